import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { deleteExpiredJobMetrics, newId, startScheduler } from '@dstack/core';
import type { JobRecord, Scheduler } from '@dstack/core';
import { createHarness } from '../scheduler/jobs-harness.js';
import type { Harness } from '../scheduler/jobs-harness.js';

const hour = 3600 * 1_000_000;
let h: Harness;
let nowMicro: number;

async function jobWith(status: string): Promise<JobRecord> {
  const run = await h.submitRun({ commands: ['sleep'] });
  const [job] = await h.jobsOf(run.id);
  await h.ctx.store.update('jobs', { id: job.id }, { status });
  return { ...job, status };
}

async function addPoint(jobId: string, ageMicro: number): Promise<void> {
  await h.ctx.store.insert('job_metrics_points', {
    id: newId(), jobId, timestampMicro: nowMicro - ageMicro, cpuUsageMicro: ageMicro,
    memoryUsageBytes: 1, memoryWorkingSetBytes: 1, gpusMemoryUsageBytes: [],
    gpusUtilPercent: [],
  });
}

async function ages(jobId: string): Promise<number[]> {
  const points = await h.ctx.store.find('job_metrics_points', {
    where: { jobId },
    orderBy: [['timestampMicro', 'asc']],
  });
  return points.map((point) => point.cpuUsageMicro);
}

beforeEach(async () => {
  h = await createHarness();
  const fixed = h.ctx.now();
  h.ctx.now = () => fixed;
  nowMicro = fixed * 1000;
});

afterEach(async () => {
  await h.close();
});

describe('deleteExpiredJobMetrics', () => {
  it('keeps an hour for running jobs and 7 days for finished ones by default', async () => {
    const running = await jobWith('running');
    const done = await jobWith('done');
    const terminating = await jobWith('terminating');

    for (const job of [running, done, terminating]) {
      for (const age of [8 * 24 * hour, 2 * hour, hour + 1, hour - 1, 0]) {
        await addPoint(job.id, age);
      }
    }

    await addPoint('gone-job', 8 * 24 * hour);

    expect(await deleteExpiredJobMetrics(h.ctx)).toBe(5);
    expect(await ages(running.id)).toEqual([hour - 1, 0]);
    expect(await ages(done.id)).toEqual([2 * hour, hour + 1, hour - 1, 0]);
    // Neither running nor finished: the original's TTLs leave it alone.
    expect(await ages(terminating.id)).toEqual([8 * 24 * hour, 2 * hour, hour + 1, hour - 1, 0]);
    expect(await ages('gone-job')).toEqual([]);
    expect(await deleteExpiredJobMetrics(h.ctx)).toBe(0);
  });

  it('applies the configured TTLs', async () => {
    h.ctx.settings.metricsRunningTtlSeconds = 60;
    h.ctx.settings.metricsFinishedTtlSeconds = 600;
    const running = await jobWith('running');
    const failed = await jobWith('failed');

    for (const job of [running, failed]) {
      for (const age of [700_000_000, 120_000_000, 30_000_000]) {
        await addPoint(job.id, age);
      }
    }

    expect(await deleteExpiredJobMetrics(h.ctx)).toBe(3);
    expect(await ages(running.id)).toEqual([30_000_000]);
    expect(await ages(failed.id)).toEqual([120_000_000, 30_000_000]);
  });

  it('pages through many old points of finished jobs', async () => {
    const done = await jobWith('done');
    const points = Array.from({ length: 2500 }, (_, index) => ({
      id: newId(), jobId: index % 2 === 0 ? done.id : `gone-${index}`,
      timestampMicro: nowMicro - 8 * 24 * hour - index, cpuUsageMicro: 0, memoryUsageBytes: 1,
      memoryWorkingSetBytes: 1, gpusMemoryUsageBytes: [], gpusUtilPercent: [],
    }));
    await h.ctx.store.insert('job_metrics_points', points);

    expect(await deleteExpiredJobMetrics(h.ctx)).toBe(2500);
    expect(await h.ctx.store.count('job_metrics_points')).toBe(0);
  });
});

describe('the scheduler', () => {
  let scheduler: Scheduler | null = null;

  afterEach(async () => {
    await scheduler?.stop();
    scheduler = null;
  });

  it('deletes expired job metrics on its cleanup interval', async () => {
    const running = await jobWith('running');
    await addPoint(running.id, 2 * hour);
    await addPoint(running.id, 10);
    scheduler = startScheduler(h.ctx, { metricsCleanupMillis: 20, maxIdleMillis: 20 });

    await h.until(async () => ((await ages(running.id)).length === 1 ? true : undefined));
    expect(await ages(running.id)).toEqual([10]);
  });
});
