import type { FastifyInstance, FastifyRequest } from 'fastify';
import {
  getJobMetrics,
  parseWireTimeMicro,
  RequestValidationError,
  ResourceNotExistsError,
} from '@dstack/core';
import type { RunRecord } from '@dstack/core';
import { requireProject, validateBody } from '../http/index.js';
import type { JsonSchema } from '../http/index.js';
import type { RouteDeps } from './route-deps.js';

const querySchema: JsonSchema = {
  type: 'object',
  properties: {
    run_id: { type: ['string', 'null'], format: 'uuid4', default: null },
    replica_num: { type: 'integer', default: 0 },
    job_num: { type: 'integer', default: 0 },
    limit: { type: 'integer', default: 1 },
    after: { type: ['string', 'null'], format: 'date-time', default: null },
    before: { type: ['string', 'null'], format: 'date-time', default: null },
  },
};

interface MetricsQuery {
  run_id: string | null;
  replica_num: number;
  job_num: number;
  limit: number;
  after: string | null;
  before: string | null;
}

const intParsingMessage = 'Input should be a valid integer, unable to parse string as an integer';

/** Query parameters checked like a body, with pydantic's `query` location in a 422. */
function queryOf<T>(request: FastifyRequest, schema: JsonSchema): T {
  try {
    return validateBody<T>({ ...(request.query as object) }, schema);
  } catch (error) {
    if (error instanceof RequestValidationError) {
      throw new RequestValidationError(error.issues.map((issue) => {
        const loc = ['query', ...issue.loc.slice(1)];

        // Query values are always text, so pydantic reports a number it cannot parse.
        return issue.type === 'int_type' && typeof issue.input === 'string'
          ? { ...issue, loc, type: 'int_parsing', msg: intParsingMessage }
          : { ...issue, loc };
      }));
    }

    throw error;
  }
}

/**
 * `GET /api/project/{p}/metrics/job/{run_name}` (any member): the job is looked up by run
 * id or the latest non-deleted run of that name, then by replica and job number (its latest
 * submission); the answer holds its newest `limit` samples within `after` and `before`.
 */
export function registerMetricsRoutes(app: FastifyInstance, deps: RouteDeps): void {
  const { ctx } = deps;

  app.get('/api/project/:project_name/metrics/job/:run_name', async (request) => {
    const { project } = await requireProject(request, 'member');
    const query = queryOf<MetricsQuery>(request, querySchema);
    const runName = (request.params as { run_name: string }).run_name;
    let run: RunRecord | undefined;

    if (query.run_id !== null) {
      run = await ctx.store.findOne('runs', {
        where: { id: query.run_id.toLowerCase(), projectId: project.id },
      });
    } else {
      run = await ctx.store.findOne('runs', {
        where: { projectId: project.id, runName, deleted: false },
        orderBy: [['submittedAt', 'desc']],
      });
    }

    const job = run === undefined ? undefined : await ctx.store.findOne('jobs', {
      where: { runId: run.id, replicaNum: query.replica_num, jobNum: query.job_num },
      orderBy: [['submissionNum', 'desc']],
    });

    if (job === undefined) {
      throw new ResourceNotExistsError('Found no job with given parameters');
    }

    return getJobMetrics(ctx.store, job, {
      limit: query.limit,
      afterMicro: query.after === null ? null : parseWireTimeMicro(query.after),
      beforeMicro: query.before === null ? null : parseWireTimeMicro(query.before),
    }, ctx.logger);
  });
}
