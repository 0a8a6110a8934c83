import type { FastifyInstance } from 'fastify';
import {
  createOrUpdateSecret,
  deleteSecrets,
  getSecret,
  listSecrets,
} from '@dstack/core';
import { parseBody, requireProject } from '../http/index.js';
import type { JsonSchema } from '../http/index.js';
import type { RouteDeps } from './route-deps.js';

const getSchema: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  properties: { name: { type: 'string' } },
};

const createOrUpdateSchema: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'value'],
  properties: { name: { type: 'string' }, value: { type: 'string' } },
};

const deleteSchema: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['secrets_names'],
  properties: { secrets_names: { type: 'array', items: { type: 'string' } } },
};

/**
 * `/api/project/{p}/secrets/*`: the manager guard first, then `can_manage_secrets` in the
 * service (managers pass only when config.yml allows it).
 */
export function registerSecretsRoutes(app: FastifyInstance, deps: RouteDeps): void {
  const { ctx } = deps;
  const prefix = '/api/project/:project_name/secrets';

  app.post(`${prefix}/list`, async (request) => {
    const scope = await requireProject(request, 'manager');

    return listSecrets(ctx, scope);
  });

  app.post(`${prefix}/get`, async (request) => {
    const scope = await requireProject(request, 'manager');
    const body = parseBody<{ name: string }>(request, getSchema);

    return getSecret(ctx, scope, body.name);
  });

  app.post(`${prefix}/create_or_update`, async (request) => {
    const scope = await requireProject(request, 'manager');
    const body = parseBody<{ name: string; value: string }>(request, createOrUpdateSchema);

    return createOrUpdateSecret(ctx, scope, body.name, body.value);
  });

  app.post(`${prefix}/delete`, async (request) => {
    const scope = await requireProject(request, 'manager');
    const body = parseBody<{ secrets_names: string[] }>(request, deleteSchema);
    await deleteSecrets(ctx, scope, body.secrets_names);

    return null;
  });
}
