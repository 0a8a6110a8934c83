import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { collectJobMetrics, newId } from '@dstack/core';
import type {
  AgentMetricsSample,
  BackendProvider,
  JobProvisioningData,
  JobRecord,
} from '@dstack/core';
import { createHarness } from './jobs-harness.js';
import type { Harness } from './jobs-harness.js';

let h: Harness;
/** Samples the agent hands out, by job submission id; a missing one means null. */
let samples: Map<string, AgentMetricsSample>;
let calls: string[];

/** The fake backend with a `metrics` member on its agents. */
function withMetrics(provider: BackendProvider): BackendProvider {
  return {
    ...provider,
    agent(data: JobProvisioningData) {
      const agent = provider.agent(data);
      return {
        ...agent,
        async metrics(jobSubmissionId: string) {
          calls.push(jobSubmissionId);
          return samples.get(jobSubmissionId) ?? null;
        },
      };
    },
  };
}

const sample = (cpu: number): AgentMetricsSample => ({
  timestampMicro: h.ctx.now() * 1000,
  cpuUsageMicro: cpu,
  memoryUsageBytes: 4096,
  memoryWorkingSetBytes: 1024,
  gpus: [{ memoryUsageBytes: 2048, utilPercent: 40 }],
});

/** Running jobs as the collection reads them, without a scheduler moving them on. */
async function addRunningJobs(count: number): Promise<JobRecord[]> {
  const run = await h.submitRun({ commands: ['sleep'] });
  const [template] = await h.jobsOf(run.id);
  const data = { backend: 'fake', instance_id: 'i-1' } as unknown as JobProvisioningData;
  const jobs = Array.from({ length: count }, (_, index): JobRecord => ({
    ...template,
    id: newId(),
    jobNum: index + 1,
    status: 'running',
    lastProcessedAt: 1000 + index,
    provisioningData: data,
    instanceId: 'i-1',
  }));
  await h.ctx.store.insert('jobs', jobs);
  return jobs;
}

const agents = {
  get(_key: string, data: JobProvisioningData) {
    return h.ctx.providers.get('fake')!.agent(data);
  },
};

beforeEach(async () => {
  h = await createHarness();
  h.ctx.providers = new Map([['fake', withMetrics(h.backend.provider)]]);
  samples = new Map();
  calls = [];
});

afterEach(async () => {
  await h.close();
});

describe('collectJobMetrics', () => {
  it('stores a point per running job that gives a sample, and none for the others', async () => {
    const [first, second, third] = await addRunningJobs(3);
    samples.set(first.id, sample(1_500_000));
    samples.set(second.id, sample(7));

    expect(await collectJobMetrics(h.ctx, agents)).toBe(2);

    const points = await h.ctx.store.find('job_metrics_points', {
      orderBy: [['cpuUsageMicro', 'asc']],
    });
    expect(points.map(({ id: _id, ...point }) => point)).toEqual([
      {
        jobId: second.id, timestampMicro: samples.get(second.id)!.timestampMicro,
        cpuUsageMicro: 7, memoryUsageBytes: 4096, memoryWorkingSetBytes: 1024,
        gpusMemoryUsageBytes: [2048], gpusUtilPercent: [40],
      },
      {
        jobId: first.id, timestampMicro: samples.get(first.id)!.timestampMicro,
        cpuUsageMicro: 1_500_000, memoryUsageBytes: 4096, memoryWorkingSetBytes: 1024,
        gpusMemoryUsageBytes: [2048], gpusUtilPercent: [40],
      },
    ]);
    expect(calls.sort()).toEqual([first.id, second.id, third.id].sort());
  });

  it('skips jobs with a point from the last 9 s, and samples them again after', async () => {
    const [job] = await addRunningJobs(1);
    samples.set(job.id, sample(1));
    expect(await collectJobMetrics(h.ctx, agents)).toBe(1);

    h.advance(8000);
    samples.set(job.id, sample(2));
    expect(await collectJobMetrics(h.ctx, agents)).toBe(0);
    expect(calls).toEqual([job.id]);

    h.advance(1500);
    samples.set(job.id, sample(3));
    expect(await collectJobMetrics(h.ctx, agents)).toBe(1);

    const points = await h.ctx.store.find('job_metrics_points', { where: { jobId: job.id } });
    expect(points.map((point) => point.cpuUsageMicro).sort()).toEqual([1, 3]);
  });

  it('samples at most 100 running jobs, the least recently processed first', async () => {
    const jobs = await addRunningJobs(105);
    const done = { ...jobs[0], id: newId(), status: 'done' };
    await h.ctx.store.insert('jobs', done);

    for (const job of [...jobs, done]) {
      samples.set(job.id, sample(1));
    }

    expect(await collectJobMetrics(h.ctx, agents)).toBe(100);
    expect(new Set(calls)).toEqual(new Set(jobs.slice(0, 100).map((job) => job.id)));
  });

  it('goes on with the other jobs when an agent throws', async () => {
    const [broken, fine] = await addRunningJobs(2);
    samples.set(fine.id, sample(5));
    const failing = {
      get(key: string, data: JobProvisioningData) {
        const agent = agents.get(key, data);
        return {
          ...agent,
          async metrics(id: string) {
            if (id === broken.id) {
              throw new Error('connection reset');
            }
            return agent.metrics!(id);
          },
        };
      },
    };

    expect(await collectJobMetrics(h.ctx, failing)).toBe(1);
  });
});

describe('the scheduler', () => {
  it('collects points of a job it runs on its metrics interval', async () => {
    await h.addFleet();
    const run = await h.submitRun({ commands: ['sleep'] });
    h.start({ metricsCollectMillis: 30 });
    const job = await h.until(async () => {
      const [current] = await h.jobsOf(run.id);
      return current?.status === 'running' ? current : undefined;
    });
    samples.set(job.id, sample(42));

    const point = await h.until(() =>
      h.ctx.store.findOne('job_metrics_points', { where: { jobId: job.id } }));
    expect(point.cpuUsageMicro).toBe(42);
  });
});
