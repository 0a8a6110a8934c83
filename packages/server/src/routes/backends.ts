import type { FastifyInstance, FastifyRequest } from 'fastify';
import {
  BackendNotAvailableError,
  createBackend,
  createBackendYaml,
  deleteBackends,
  getBackendConfigInfo,
  getBackendYaml,
  knownBackendTypes,
  RequestValidationError,
  updateBackend,
  updateBackendYaml,
} from '@dstack/core';
import type { BackendConfigInput, CoreContext } from '@dstack/core';
import { parseBody, requireProject, validateBody } from '../http/index.js';
import type { JsonSchema } from '../http/index.js';
import type { RouteDeps } from './route-deps.js';

const typedSchema: JsonSchema = {
  type: 'object',
  required: ['type'],
  properties: { type: { type: 'string' } },
};

const deleteSchema: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['backends_names'],
  properties: { backends_names: { type: 'array', items: { type: 'string' } } },
};

const yamlSchema: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['config_yaml'],
  properties: { config_yaml: { type: 'string' } },
};

function expectedTypes(ctx: CoreContext): string[] {
  return [...new Set([...knownBackendTypes, ...ctx.providers.keys()])].sort();
}

/** A type that is neither a dstack backend type nor a registered plug-in: 422, as an enum. */
function unknownType(ctx: CoreContext, loc: (string | number)[], input: string): never {
  const expected = expectedTypes(ctx).map((type) => `'${type}'`).join(', ');

  throw new RequestValidationError([{
    type: 'enum', loc, msg: `Input should be ${expected}`, input, ctx: { expected },
  }]);
}

/** The body as its provider's schema accepts it (422 otherwise), type checked first. */
function parseBackendConfig(ctx: CoreContext, request: FastifyRequest): BackendConfigInput {
  const { type } = parseBody<{ type: string }>(request, typedSchema);
  const provider = ctx.providers.get(type);

  if (provider === undefined) {
    if (knownBackendTypes.includes(type)) {
      throw new BackendNotAvailableError();
    }

    return unknownType(ctx, ['body', 'type'], type);
  }

  if (provider.configSchema === undefined) {
    return request.body as BackendConfigInput;
  }

  return validateBody<BackendConfigInput>(request.body, provider.configSchema as JsonSchema);
}

function backendName(ctx: CoreContext, request: FastifyRequest): string {
  const name = (request.params as { backend_name: string }).backend_name;

  if (!knownBackendTypes.includes(name) && !ctx.providers.has(name)) {
    return unknownType(ctx, ['path', 'backend_name'], name);
  }

  return name;
}

/**
 * `/api/project/{p}/backends/*` for project admins (create, update, delete, config_info and
 * the YAML forms); `list_types` lives with the run routes.
 */
export function registerBackendsRoutes(app: FastifyInstance, deps: RouteDeps): void {
  const { ctx } = deps;
  const prefix = '/api/project/:project_name/backends';

  app.post(`${prefix}/create`, async (request) => {
    const scope = await requireProject(request, 'admin');

    return createBackend(ctx, scope, parseBackendConfig(ctx, request));
  });

  app.post(`${prefix}/update`, async (request) => {
    const scope = await requireProject(request, 'admin');

    return updateBackend(ctx, scope, parseBackendConfig(ctx, request));
  });

  app.post(`${prefix}/delete`, async (request) => {
    const scope = await requireProject(request, 'admin');
    const body = parseBody<{ backends_names: string[] }>(request, deleteSchema);
    await deleteBackends(ctx, scope, body.backends_names);

    return null;
  });

  app.post(`${prefix}/:backend_name/config_info`, async (request) => {
    const scope = await requireProject(request, 'admin');

    return getBackendConfigInfo(ctx, scope, backendName(ctx, request));
  });

  app.post(`${prefix}/create_yaml`, async (request) => {
    const scope = await requireProject(request, 'admin');
    const body = parseBody<{ config_yaml: string }>(request, yamlSchema);
    await createBackendYaml(ctx, scope, body.config_yaml);

    return null;
  });

  app.post(`${prefix}/update_yaml`, async (request) => {
    const scope = await requireProject(request, 'admin');
    const body = parseBody<{ config_yaml: string }>(request, yamlSchema);
    await updateBackendYaml(ctx, scope, body.config_yaml);

    return null;
  });

  app.post(`${prefix}/:backend_name/get_yaml`, async (request) => {
    const scope = await requireProject(request, 'admin');

    return getBackendYaml(ctx, scope, backendName(ctx, request));
  });
}
