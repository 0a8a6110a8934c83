import type { CoreContext } from '../context.js';
import type { JobProvisioningData } from '../domain/resources.js';
import type { AgentMetricsSample } from '../ports/backend-provider.js';
import type { JobMetricsPointRecord, JobRecord } from '../records.js';
import { deleteExpiredJobMetrics } from '../services/metrics-retention.js';
import { newId } from '../util/ids.js';
import type { AgentCache } from './agents.js';
import type { PeriodicTaskHandle } from './periodic-task.js';
import { startPeriodicTask } from './periodic-task.js';
import { errorText } from './runtime.js';

/** How often job metrics are collected and expired; both have the original's defaults. */
export interface JobMetricsTaskOptions {
  /** Between two collections (default 10 s). */
  metricsCollectMillis?: number;
  /** Between two TTL deletes (default 5 min). */
  metricsCleanupMillis?: number;
}

/** Running jobs sampled per collection, oldest processed first. */
export const maxJobsPerCollection = 100;
/** Jobs sampled at once. */
export const jobsPerBatch = 10;
/** A job with a point this recent (from any replica) is not sampled again. */
export const minCollectIntervalMillis = 9000;

/**
 * Takes one metrics sample of up to 100 RUNNING jobs, ten at a time, and stores a point per
 * sample. Jobs sampled in the last 9 s (by any replica) are skipped, and so are jobs whose
 * agent has no metrics or gives none. Returns how many points were stored.
 */
export async function collectJobMetrics(
  ctx: Pick<CoreContext, 'store' | 'logger' | 'now'>,
  agents: Pick<AgentCache, 'get'>,
): Promise<number> {
  const jobs = await ctx.store.find('jobs', {
    where: { status: 'running' },
    orderBy: [['lastProcessedAt', 'asc']],
    limit: maxJobsPerCollection,
  });
  let stored = 0;

  for (let start = 0; start < jobs.length; start += jobsPerBatch) {
    stored += await collectBatch(ctx, agents, jobs.slice(start, start + jobsPerBatch));
  }

  return stored;
}

async function collectBatch(
  ctx: Pick<CoreContext, 'store' | 'logger' | 'now'>,
  agents: Pick<AgentCache, 'get'>,
  jobs: JobRecord[],
): Promise<number> {
  const recent = await ctx.store.find('job_metrics_points', {
    where: {
      jobId: { in: jobs.map((job) => job.id) },
      timestampMicro: { gt: (ctx.now() - minCollectIntervalMillis) * 1000 },
    },
  });
  const collected = new Set(recent.map((point) => point.jobId));
  const due = jobs.filter((job) => !collected.has(job.id));
  const samples = await Promise.all(due.map((job) => sampleOf(ctx, agents, job)));
  const points: JobMetricsPointRecord[] = [];

  due.forEach((job, index) => {
    const sample = samples[index];

    if (sample !== null) {
      points.push(pointOf(job, sample));
    }
  });

  if (points.length > 0) {
    await ctx.store.insert('job_metrics_points', points);
  }

  return points.length;
}

async function sampleOf(
  ctx: Pick<CoreContext, 'logger'>,
  agents: Pick<AgentCache, 'get'>,
  job: JobRecord,
): Promise<AgentMetricsSample | null> {
  const data = job.provisioningData as JobProvisioningData | null;

  if (data === null) {
    return null;
  }

  try {
    const agent = agents.get(job.instanceId ?? job.id, data);
    return (await agent.metrics?.(job.id)) ?? null;
  } catch (error) {
    // The job may have ended since it was read: the next pass knows.
    ctx.logger.warn({ runName: job.runName, jobId: job.id, err: errorText(error) },
      'cannot collect job metrics');
    return null;
  }
}

function pointOf(job: JobRecord, sample: AgentMetricsSample): JobMetricsPointRecord {
  return {
    id: newId(),
    jobId: job.id,
    timestampMicro: Math.round(sample.timestampMicro),
    cpuUsageMicro: Math.round(sample.cpuUsageMicro),
    memoryUsageBytes: Math.round(sample.memoryUsageBytes),
    memoryWorkingSetBytes: Math.round(sample.memoryWorkingSetBytes),
    gpusMemoryUsageBytes: sample.gpus.map((gpu) => Math.round(gpu.memoryUsageBytes)),
    gpusUtilPercent: sample.gpus.map((gpu) => Math.round(gpu.utilPercent)),
  };
}

/** The collection and TTL tasks of job metrics, as one handle. */
export function startJobMetricsTasks(
  ctx: CoreContext,
  agents: Pick<AgentCache, 'get'>,
  options: JobMetricsTaskOptions = {},
): PeriodicTaskHandle {
  const collect = startPeriodicTask(
    ctx.logger,
    'collect-job-metrics',
    options.metricsCollectMillis ?? 10_000,
    async () => {
      const stored = await collectJobMetrics(ctx, agents);

      if (stored > 0) {
        ctx.logger.debug({ stored }, 'job metrics collected');
      }
    },
  );
  const cleanup = startPeriodicTask(
    ctx.logger,
    'delete-expired-job-metrics',
    options.metricsCleanupMillis ?? 5 * 60_000,
    async () => {
      const deleted = await deleteExpiredJobMetrics(ctx);

      if (deleted > 0) {
        ctx.logger.info({ deleted }, 'expired job metrics deleted');
      }
    },
  );

  return {
    async stop() {
      await Promise.all([collect.stop(), cleanup.stop()]);
    },
  };
}
