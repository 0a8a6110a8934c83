import type { FastifyInstance } from 'fastify';
import { ServerClientError } from '@dstack/core';
import { parseBody, requireProject } from '../http/index.js';
import type { JsonSchema } from '../http/index.js';
import type { RouteDeps } from './route-deps.js';

const anyObject: JsonSchema = { type: 'object' };

function notSupported(): ServerClientError {
  return new ServerClientError(
    'This server does not support exports and imports of fleets and gateways yet',
  );
}

/**
 * `/api/project/{p}/exports/*` and `/imports/*`: cross-project sharing. Nothing can be
 * exported here yet, so the lists are empty and the admin-only mutations answer 400.
 */
export function registerExportsRoutes(app: FastifyInstance, _deps: RouteDeps): void {
  const prefix = '/api/project/:project_name';

  for (const path of ['exports/list', 'imports/list']) {
    app.post(`${prefix}/${path}`, async (request) => {
      await requireProject(request, 'member');

      // TODO: exports and imports are not implemented; no project has any yet.
      return [];
    });
  }

  for (const path of ['exports/create', 'exports/update', 'exports/delete', 'imports/delete']) {
    app.post(`${prefix}/${path}`, async (request) => {
      await requireProject(request, 'admin');
      parseBody(request, anyObject);

      throw notSupported();
    });
  }
}
