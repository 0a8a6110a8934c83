import { latestSubmissions } from '@dstack/core';
import type { Harness } from './jobs-harness.js';

const finished = ['terminated', 'failed', 'done', 'aborted'];

/** Waits until the run's serving replicas are exactly `count`, all of `deploymentNum`. */
export async function servingAt(h: Harness, runId: string, count: number, deploymentNum: number) {
  return h.until(async () => {
    const jobs = await h.jobsOf(runId);
    const serving = latestSubmissions(jobs).filter((job) => job.status === 'running');
    const unfinished = jobs.filter((job) => !finished.includes(job.status));
    const settled = serving.length === count && unfinished.length === count &&
      serving.every((job) => job.deploymentNum === deploymentNum);
    return settled ? serving : undefined;
  }, 20_000);
}

/**
 * Samples the run while `work` runs: the fewest running jobs, the most unfinished ones and
 * every run status.
 */
export async function watchRun(h: Harness, runId: string, work: () => Promise<unknown>) {
  let fewest = Number.POSITIVE_INFINITY;
  let most = 0;
  const statuses = new Set<string>();
  let watching = true;
  const sampler = (async () => {
    while (watching) {
      const jobs = await h.jobsOf(runId);
      fewest = Math.min(fewest, jobs.filter((job) => job.status === 'running').length);
      most = Math.max(most, jobs.filter((job) => !finished.includes(job.status)).length);
      statuses.add((await h.ctx.store.get('runs', runId))!.status);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  })();

  try {
    await work();
  } finally {
    watching = false;
    await sampler;
  }

  return { fewest, most, statuses };
}
