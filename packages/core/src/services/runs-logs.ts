import type { CoreContext } from '../context.js';
import type { LogProducer } from '../ports/log-store.js';
import type { ProjectRecord } from '../records.js';
import { toWireTime } from '../util/time.js';

/** The body of `logs/poll`, times already parsed. */
export interface PollLogsRequest {
  runName: string;
  jobSubmissionId: string;
  startTime: number | null;
  endTime: number | null;
  descending: boolean;
  nextToken: string | null;
  limit: number;
  diagnose: boolean;
}

/** The wire `JobSubmissionLogs`: messages as base64 of their UTF-8 bytes. */
export interface JobSubmissionLogs {
  logs: { timestamp: string; log_source: 'stdout' | 'stderr'; message: string }[];
  external_url: string | null;
  next_token: string | null;
}

/** One page of a job submission's logs (`diagnose` reads the agent's own log). */
export async function pollRunLogs(
  ctx: CoreContext,
  project: ProjectRecord,
  request: PollLogsRequest,
): Promise<JobSubmissionLogs> {
  if (request.limit === 0) {
    return { logs: [], external_url: null, next_token: null };
  }

  const producer: LogProducer = request.diagnose ? 'runner' : 'job';
  const page = await ctx.logs.poll(
    {
      projectName: project.name,
      runName: request.runName,
      jobSubmissionId: request.jobSubmissionId,
      producer,
    },
    {
      startTime: request.startTime,
      endTime: request.endTime,
      descending: request.descending,
      nextToken: request.nextToken,
      limit: request.limit,
    },
  );

  return {
    logs: page.events.map((event) => ({
      timestamp: toWireTime(event.timestamp),
      log_source: event.logSource,
      message: Buffer.from(event.message, 'utf8').toString('base64'),
    })),
    external_url: page.externalUrl ?? null,
    next_token: page.nextToken,
  };
}
