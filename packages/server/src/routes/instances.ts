import type { FastifyInstance } from 'fastify';
import { getInstance, listInstances, parseWireTime, visibleProjects } from '@dstack/core';
import { parseBody, requireProject, requireUser } from '../http/index.js';
import type { RouteDeps } from './route-deps.js';

const listSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    project_names: { type: ['array', 'null'], items: { type: 'string' }, default: null },
    fleet_ids: {
      type: ['array', 'null'],
      items: { type: 'string', format: 'uuid' },
      default: null,
    },
    only_active: { type: 'boolean', default: false },
    include_imported: { type: 'boolean', default: false },
    prev_created_at: { type: ['string', 'null'], format: 'date-time', default: null },
    prev_id: { type: ['string', 'null'], format: 'uuid', default: null },
    limit: { type: 'integer', default: 1000 },
    ascending: { type: 'boolean', default: false },
  },
};

const getSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['id'],
  properties: { id: { type: 'string', format: 'uuid' } },
};

interface ListBody {
  project_names: string[] | null;
  fleet_ids: string[] | null;
  only_active: boolean;
  prev_created_at: string | null;
  prev_id: string | null;
  limit: number;
  ascending: boolean;
}

/** Instances: the global list and one instance of a project. */
export function registerInstancesRoutes(app: FastifyInstance, deps: RouteDeps): void {
  const { ctx } = deps;

  app.post('/api/instances/list', async (request) => {
    const user = await requireUser(request);
    const body = parseBody<ListBody>(request, listSchema);
    let projects = await visibleProjects(ctx, user);

    if (body.project_names !== null) {
      const wanted = new Set(body.project_names.map((name) => name.toLowerCase()));
      projects = projects.filter((project) => wanted.has(project.name.toLowerCase()));
    }

    return listInstances(ctx, {
      projectIds: projects.map((project) => project.id),
      fleetIds: body.fleet_ids?.map((id) => id.toLowerCase()) ?? null,
      onlyActive: body.only_active,
      prevCreatedAt: body.prev_created_at === null ? null : parseWireTime(body.prev_created_at),
      prevId: body.prev_id?.toLowerCase() ?? null,
      limit: Math.max(0, body.limit),
      ascending: body.ascending,
    });
  });

  app.post('/api/project/:project_name/instances/get', async (request) => {
    const { project } = await requireProject(request, 'member');
    const body = parseBody<{ id: string }>(request, getSchema);

    return getInstance(ctx, project, body.id.toLowerCase());
  });
}
