import type { FastifyInstance } from 'fastify';
import { getVolume, listVolumes, volumesNotSupported } from '@dstack/core';
import { parseBody, requireProject, requireUser } from '../http/index.js';
import type { JsonSchema } from '../http/index.js';
import type { RouteDeps } from './route-deps.js';

function objectSchema(required: string[], properties: Record<string, object>): JsonSchema {
  return { type: 'object', additionalProperties: false, required, properties };
}

const listAllSchema = objectSchema([], {
  project_name: { type: ['string', 'null'], default: null },
  only_active: { type: 'boolean', default: false },
  prev_created_at: { type: ['string', 'null'], format: 'date-time', default: null },
  prev_id: { type: ['string', 'null'], format: 'uuid', default: null },
  limit: { type: 'integer', minimum: 0, maximum: 100, default: 100 },
  ascending: { type: 'boolean', default: false },
});
const nameSchema = objectSchema(['name'], { name: { type: 'string' } });
const createSchema = objectSchema(['configuration'], { configuration: { type: 'object' } });
const deleteSchema = objectSchema(['names'], {
  names: { type: 'array', items: { type: 'string' } },
});

/**
 * `/api/volumes/list` and `/api/project/{p}/volumes/*`. This server has no volumes: lists
 * are empty, get is 400 `resource_not_exists`, create and delete say they are unsupported.
 */
export function registerVolumesRoutes(app: FastifyInstance, _deps: RouteDeps): void {
  const prefix = '/api/project/:project_name/volumes';

  app.post('/api/volumes/list', async (request) => {
    await requireUser(request);
    parseBody(request, listAllSchema);

    return listVolumes();
  });

  app.post(`${prefix}/list`, async (request) => {
    await requireProject(request, 'member');

    return listVolumes();
  });

  app.post(`${prefix}/get`, async (request) => {
    await requireProject(request, 'member');
    parseBody(request, nameSchema);

    return getVolume();
  });

  for (const [path, schema] of [['create', createSchema], ['delete', deleteSchema]] as const) {
    app.post(`${prefix}/${path}`, async (request) => {
      await requireProject(request, 'member');
      parseBody(request, schema);

      throw volumesNotSupported();
    });
  }
}
