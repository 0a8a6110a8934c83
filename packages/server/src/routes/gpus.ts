import type { FastifyInstance } from 'fastify';
import { listGpus } from '@dstack/core';
import type { GpuGroupBy } from '@dstack/core';
import { parseBody, requireProject } from '../http/index.js';
import type { JsonSchema } from '../http/index.js';
import type { RouteDeps } from './route-deps.js';

const listSchema: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['run_spec'],
  properties: {
    run_spec: { type: 'object' },
    group_by: {
      type: ['array', 'null'],
      items: { enum: ['backend', 'region', 'count'] },
      default: null,
    },
    // Listed in the request model (§3.12); offers are always whole here, so both are unused.
    full_offers: { type: 'boolean', default: false },
    unallocated_resources: { type: 'boolean', default: false },
  },
};

/** `/api/project/{p}/gpus/list` (any member): the GPUs the project's backends offer. */
export function registerGpusRoutes(app: FastifyInstance, deps: RouteDeps): void {
  const { ctx } = deps;

  app.post('/api/project/:project_name/gpus/list', async (request) => {
    const scope = await requireProject(request, 'member');
    const body = parseBody<{ run_spec: unknown; group_by: GpuGroupBy[] | null }>(
      request,
      listSchema,
    );

    return listGpus(ctx, scope, body.run_spec, body.group_by);
  });
}
