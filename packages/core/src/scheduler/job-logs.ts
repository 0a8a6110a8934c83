import type { AgentPull, InstanceAgent } from '../ports/backend-provider.js';
import type { LogStream } from '../ports/log-store.js';
import type { JobRecord } from '../records.js';
import type { Claimed } from './pipeline.js';
import type { SchedulerRuntime } from './runtime.js';

/** What draining a job's agent found. */
export interface DrainResult {
  /** The last pull; null when nothing could be pulled. */
  last: AgentPull | null;
  cursor: number;
}

function streamOf(job: JobRecord, producer: 'job' | 'runner'): LogStream {
  return {
    projectName: '',
    runName: job.runName,
    jobSubmissionId: job.id,
    producer,
  };
}

/**
 * Pulls state and logs from the agent, writes each page to the log store and only then
 * saves the cursor (guarded by the lease), so a crash repeats a page but never loses one.
 */
export async function drainAgent(
  rt: SchedulerRuntime,
  item: Claimed<'jobs'>,
  agent: InstanceAgent,
  projectName: string,
): Promise<DrainResult> {
  const job = item.row;
  let cursor = job.runnerTimestamp ?? 0;
  let last: AgentPull | null = null;

  for (let page = 0; page < rt.options.maxPullsPerPass; page += 1) {
    const pull = await agent.pull(job.id, cursor);
    last = pull;

    if (pull.jobLogs.length > 0) {
      await rt.ctx.logs.write({ ...streamOf(job, 'job'), projectName }, pull.jobLogs);
    }

    if (pull.runnerLogs.length > 0) {
      await rt.ctx.logs.write({ ...streamOf(job, 'runner'), projectName }, pull.runnerLogs);
    }

    if (pull.cursor !== cursor) {
      const saved = await rt.ctx.store.update(
        'jobs',
        { id: job.id, lockToken: item.token },
        { runnerTimestamp: pull.cursor },
      );

      if (saved === 0) {
        break;
      }

      cursor = pull.cursor;
    }

    if (!pull.hasMore) {
      break;
    }
  }

  return { last, cursor };
}
