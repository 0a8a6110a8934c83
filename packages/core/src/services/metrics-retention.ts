import type { CoreContext } from '../context.js';
import { finishedJobStatuses } from '../domain/job.js';
import {
  defaultMetricsFinishedTtlSeconds,
  defaultMetricsRunningTtlSeconds,
} from '../settings.js';

// Ids per delete, so that the statements stay well below the databases' parameter limits.
const idsPerDelete = 500;
// Old points looked at per step of the finished-jobs pass.
const pointsPerPage = 1000;

/**
 * Deletes job metrics points past their TTL, as the original does: points of RUNNING jobs
 * older than `metricsRunningTtlSeconds`, points of finished jobs older than
 * `metricsFinishedTtlSeconds`; points whose job is gone count as finished, and jobs in other
 * states keep theirs. Returns how many points went; safe on several replicas at once, as
 * every delete is idempotent.
 */
export async function deleteExpiredJobMetrics(
  ctx: Pick<CoreContext, 'store' | 'now' | 'settings'>,
): Promise<number> {
  const nowMicro = ctx.now() * 1000;
  const runningTtl = ctx.settings.metricsRunningTtlSeconds ?? defaultMetricsRunningTtlSeconds;
  const finishedTtl = ctx.settings.metricsFinishedTtlSeconds ??
    defaultMetricsFinishedTtlSeconds;

  const running = await deleteOfRunningJobs(ctx, nowMicro - runningTtl * 1_000_000);
  const finished = await deleteOfFinishedJobs(ctx, nowMicro - finishedTtl * 1_000_000);

  return running + finished;
}

async function deleteOfRunningJobs(
  ctx: Pick<CoreContext, 'store'>,
  cutoffMicro: number,
): Promise<number> {
  // TODO: the store reads whole job rows (no projection); at many thousands of running jobs
  // this pass reads them all every 5 minutes.
  const jobs = await ctx.store.find('jobs', { where: { status: 'running' } });
  const ids = jobs.map((job) => job.id);
  let deleted = 0;

  for (let start = 0; start < ids.length; start += idsPerDelete) {
    deleted += await ctx.store.delete('job_metrics_points', {
      jobId: { in: ids.slice(start, start + idsPerDelete) },
      timestampMicro: { lt: cutoffMicro },
    });
  }

  return deleted;
}

// Finished jobs are never few, so the pass starts from the old points instead: the jobs
// they belong to are looked up page by page.
async function deleteOfFinishedJobs(
  ctx: Pick<CoreContext, 'store'>,
  cutoffMicro: number,
): Promise<number> {
  const finished = new Set<string>(finishedJobStatuses);
  let deleted = 0;

  for (;;) {
    const page = await ctx.store.find('job_metrics_points', {
      where: { timestampMicro: { lt: cutoffMicro } },
      orderBy: [['timestampMicro', 'asc']],
      limit: pointsPerPage,
    });
    const jobIds = [...new Set(page.map((point) => point.jobId))];
    const jobs = jobIds.length === 0
      ? []
      : await ctx.store.find('jobs', { where: { id: { in: jobIds } } });
    const kept = new Set(jobs.filter((job) => !finished.has(job.status)).map((job) => job.id));
    const expired = jobIds.filter((id) => !kept.has(id));

    if (expired.length === 0) {
      return deleted;
    }

    deleted += await ctx.store.delete('job_metrics_points', {
      jobId: { in: expired },
      timestampMicro: { lt: cutoffMicro },
    });

    if (page.length < pointsPerPage) {
      return deleted;
    }
  }
}
