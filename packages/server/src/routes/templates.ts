import type { FastifyInstance } from 'fastify';
import { requireProject } from '../http/index.js';
import type { RouteDeps } from './route-deps.js';

/** `POST /api/project/{p}/templates/list` (any member). */
export function registerTemplatesRoutes(app: FastifyInstance, _deps: RouteDeps): void {
  app.post('/api/project/:project_name/templates/list', async (request) => {
    await requireProject(request, 'member');

    // TODO: the original lists templates from the project's templates_repo (a git clone);
    // this server fetches none, which matters only for projects that set templates_repo.
    return [];
  });
}
