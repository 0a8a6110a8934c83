import type { FastifyInstance } from 'fastify';
import { gatewaysNotSupported, getGateway, listGateways } from '@dstack/core';
import { parseBody, requireProject } from '../http/index.js';
import type { JsonSchema } from '../http/index.js';
import type { RouteDeps } from './route-deps.js';

function objectSchema(required: string[], properties: Record<string, object>): JsonSchema {
  return { type: 'object', additionalProperties: false, required, properties };
}

const listSchema = objectSchema([], { include_imported: { type: 'boolean', default: false } });
const nameSchema = objectSchema(['name'], { name: { type: 'string' } });

// The admin-only mutations, each with the body the original's request model takes.
const mutations: Record<string, JsonSchema> = {
  get_plan: objectSchema(['spec'], { spec: { type: 'object' } }),
  apply: objectSchema(['plan'], {
    plan: { type: 'object' },
    force: { type: 'boolean', default: false },
  }),
  create: objectSchema(['configuration'], { configuration: { type: 'object' } }),
  delete: objectSchema(['names'], { names: { type: 'array', items: { type: 'string' } } }),
  set_default: objectSchema(['name'], {
    name: { type: 'string' },
    gateway_project: { type: ['string', 'null'], default: null },
  }),
  set_wildcard_domain: objectSchema(['name'], {
    name: { type: 'string' },
    wildcard_domain: { type: ['string', 'null'], default: null },
  }),
};

/**
 * `/api/project/{p}/gateways/*`. This server has no gateways: list is empty, get is 400
 * `resource_not_exists`, and every mutation is a 400 saying gateways are not supported.
 */
export function registerGatewaysRoutes(app: FastifyInstance, _deps: RouteDeps): void {
  const prefix = '/api/project/:project_name/gateways';

  app.post(`${prefix}/list`, async (request) => {
    await requireProject(request, 'memberOrPublic');
    parseBody(request, listSchema, { optional: true });

    return listGateways();
  });

  app.post(`${prefix}/get`, async (request) => {
    await requireProject(request, 'memberOrPublic');
    parseBody(request, nameSchema);

    return getGateway();
  });

  for (const [path, schema] of Object.entries(mutations)) {
    app.post(`${prefix}/${path}`, async (request) => {
      await requireProject(request, 'admin');
      parseBody(request, schema);

      throw gatewaysNotSupported();
    });
  }
}
