import type { FastifyInstance } from 'fastify';
import { LogTokenError, parseWireTime, pollRunLogs, ServerClientError } from '@dstack/core';
import { parseBody, requireProject } from '../http/index.js';
import type { RouteDeps } from './route-deps.js';

const pollSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['run_name', 'job_submission_id'],
  properties: {
    run_name: { type: 'string' },
    job_submission_id: { type: 'string', format: 'uuid4' },
    start_time: { type: ['string', 'null'], format: 'date-time', default: null },
    end_time: { type: ['string', 'null'], format: 'date-time', default: null },
    descending: { type: 'boolean', default: false },
    next_token: { type: ['string', 'null'], default: null },
    limit: { type: 'integer', minimum: 0, maximum: 1000, default: 100 },
    diagnose: { type: 'boolean', default: false },
  },
};

interface PollBody {
  run_name: string;
  job_submission_id: string;
  start_time: string | null;
  end_time: string | null;
  descending: boolean;
  next_token: string | null;
  limit: number;
  diagnose: boolean;
}

/** `logs/poll`: one page of a job submission's logs, messages in base64. */
export function registerLogsRoutes(app: FastifyInstance, deps: RouteDeps): void {
  const { ctx } = deps;

  app.post('/api/project/:project_name/logs/poll', async (request) => {
    const { project } = await requireProject(request, 'member');
    const body = parseBody<PollBody>(request, pollSchema);

    try {
      return await pollRunLogs(ctx, project, {
        runName: body.run_name,
        jobSubmissionId: body.job_submission_id.toLowerCase(),
        startTime: body.start_time === null ? null : parseWireTime(body.start_time),
        endTime: body.end_time === null ? null : parseWireTime(body.end_time),
        descending: body.descending,
        nextToken: body.next_token,
        limit: body.limit,
        diagnose: body.diagnose,
      });
    } catch (error) {
      // A run name too long for a file name is the sender's error: the shared handler answers
      // the original's 400 "Filename too long", and nothing is logged as a failure.
      if (error instanceof LogTokenError ||
        (error as NodeJS.ErrnoException | null)?.code === 'ENAMETOOLONG') {
        throw error;
      }

      ctx.logger.error({ err: error instanceof Error ? error.message : String(error) },
        'log poll failed');
      throw new ServerClientError('Failed to poll logs from log storage');
    }
  });
}
