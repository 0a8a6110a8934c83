import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { newId } from '@dstack/core';
import type { JobRecord } from '@dstack/core';
import { createFakeBackend } from '@dstack/core/testing';
import type { DstackServer } from '../src/index.js';
import { CommandLineError, readServerCommandSettings } from '../src/cli/environment.js';
import { addUser, createTestServer, post } from './helpers.js';

let server: DstackServer;
let member: string;
let runId: string;

function metrics(token: string | null, path: string) {
  return server.inject({
    method: 'GET',
    url: `/api/project/main/metrics/job/${path}`,
    headers: token === null ? {} : { authorization: `Bearer ${token}` },
  });
}

const noJob = {
  detail: [{ msg: 'Found no job with given parameters', code: 'resource_not_exists' }],
};

beforeEach(async () => {
  const backend = createFakeBackend();
  server = await createTestServer({ providers: [backend.provider] });
  const project = await server.ctx.store.findOne('projects', { where: { name: 'main' } });
  await server.ctx.store.insert('backends', {
    id: newId(), projectId: project!.id, type: 'fake', config: {}, auth: null,
    sourceConfig: {}, sourceAuth: null,
  });
  member = await addUser(server, 'member');
  await post(server, '/api/projects/main/add_members', server.adminToken,
    { members: [{ username: 'member', project_role: 'user' }] });

  const applied = await post(server, '/api/project/main/runs/apply', member, {
    plan: {
      run_spec: {
        run_name: 'metered',
        configuration: { type: 'task', commands: ['true'] },
        ssh_key_pub: 'ssh-rsa AAAA test',
      },
      current_resource: null,
    },
    force: false,
  });
  expect(applied.statusCode).toBe(200);
  runId = (applied.json() as { id: string }).id;
});

afterEach(async () => {
  await server.close();
});

// 2026-01-02T03:04:05.250000Z in microseconds; samples follow every 10 s.
const t0 = Date.UTC(2026, 0, 2, 3, 4, 5) * 1000 + 250_000;
const step = 10_000_000;
const at = (index: number): string => `2026-01-02T03:04:${15 + index * 10 - 10}.250000Z`;

async function jobOf(replicaNum = 0, jobNum = 0): Promise<JobRecord> {
  const job = await server.ctx.store.findOne('jobs', {
    where: { runId, replicaNum, jobNum },
    orderBy: [['submissionNum', 'desc']],
  });
  return job!;
}

interface Sample {
  at: number;
  cpu: number;
  memory?: number;
  workingSet?: number;
  gpuMemory?: number[];
  gpuUtil?: number[];
}

async function addPoints(jobId: string, samples: Sample[]): Promise<void> {
  await server.ctx.store.insert('job_metrics_points', samples.map((sample) => ({
    id: newId(),
    jobId,
    timestampMicro: sample.at,
    cpuUsageMicro: sample.cpu,
    memoryUsageBytes: sample.memory ?? 1000,
    memoryWorkingSetBytes: sample.workingSet ?? 500,
    gpusMemoryUsageBytes: sample.gpuMemory ?? [],
    gpusUtilPercent: sample.gpuUtil ?? [],
  })));
}

function named(body: { metrics: { name: string; timestamps: string[]; values: number[] }[] }) {
  return Object.fromEntries(body.metrics.map((metric) => [metric.name, metric.values]));
}

const resources = {
  cpus: 4,
  memory_mib: 8192,
  gpus: [{ name: 'A100', memory_mib: 40960, vendor: 'nvidia' }],
  spot: false,
  disk: { size_mib: 102400 },
  cpu_arch: 'x86',
  description: '',
};

describe('metrics/job', () => {
  it('answers no samples for an existing job, by name or run id', async () => {
    const byName = await metrics(member, 'metered');
    expect(byName.statusCode).toBe(200);
    expect(byName.json()).toEqual({ metrics: [] });

    const byId = await metrics(member, `metered?run_id=${runId}&replica_num=0&job_num=0&limit=5`);
    expect(byId.json()).toEqual({ metrics: [] });
  });

  it('answers 400 resource_not_exists when no job matches', async () => {
    for (const path of [
      'ghost',
      'metered?job_num=1',
      'metered?replica_num=3',
      `metered?run_id=${crypto.randomUUID()}`,
    ]) {
      const response = await metrics(member, path);
      expect(response.statusCode).toBe(400);
      expect(response.json()).toEqual(noJob);
    }
  });

  it('ignores deleted runs when looking up by name', async () => {
    await server.ctx.store.update('runs', { id: runId }, { deleted: true });
    expect((await metrics(member, 'metered')).json()).toEqual(noJob);
  });

  it('checks the guard, then the query', async () => {
    const outsider = await addUser(server, 'outsider');
    expect((await metrics(outsider, 'metered')).statusCode).toBe(403);
    expect([401, 403]).toContain((await metrics(null, 'metered')).statusCode);

    const bad = await metrics(member, 'metered?job_num=x');
    expect(bad.statusCode).toBe(422);
    expect(bad.json().detail[0]).toMatchObject({ type: 'int_parsing', loc: ['query', 'job_num'] });

    const badId = await metrics(member, 'metered?run_id=nope');
    expect(badId.json().detail[0].loc).toEqual(['query', 'run_id']);

    // A POST to the path is the wrong method.
    expect((await post(server, '/api/project/main/metrics/job/metered', member, {})).statusCode)
      .toBe(405);
  });
});

describe('metrics/job with samples', () => {
  it('computes every metric of the newest sample from two known samples', async () => {
    const job = await jobOf();
    await server.ctx.store.update('jobs', { id: job.id }, {
      runtimeData: { offer: { instance: { name: 'big', resources } } },
    });
    await addPoints(job.id, [
      { at: t0, cpu: 5_000_000, memory: 100, workingSet: 50, gpuMemory: [1, 2], gpuUtil: [3, 4] },
      {
        at: t0 + step, cpu: 5_000_000 + 3_333_333, memory: 4096, workingSet: 2048,
        gpuMemory: [1 << 30, 2 << 30], gpuUtil: [75, 5],
      },
    ]);

    const response = await metrics(member, 'metered');
    const timestamps = ['2026-01-02T03:04:15.250000Z'];

    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({
      metrics: [
        { name: 'cpu_usage_percent', timestamps, values: [33] },
        { name: 'memory_usage_bytes', timestamps, values: [4096] },
        { name: 'memory_working_set_bytes', timestamps, values: [2048] },
        { name: 'cpus_detected_num', timestamps, values: [4] },
        { name: 'memory_total_bytes', timestamps, values: [8192 * 1024 * 1024] },
        { name: 'gpus_detected_num', timestamps, values: [2] },
        { name: 'gpu_memory_total_bytes', timestamps, values: [40960 * 1024 * 1024] },
        { name: 'gpu_memory_usage_bytes_gpu0', timestamps, values: [1 << 30] },
        { name: 'gpu_memory_usage_bytes_gpu1', timestamps, values: [2 << 30] },
        { name: 'gpu_util_percent_gpu0', timestamps, values: [75] },
        { name: 'gpu_util_percent_gpu1', timestamps, values: [5] },
      ],
    });
  });

  it('rounds a half percent to even, as the original', async () => {
    const job = await jobOf();
    // 2.5 % and then 3.5 % of one CPU.
    await addPoints(job.id, [
      { at: t0, cpu: 0 },
      { at: t0 + step, cpu: 250_000 },
      { at: t0 + 2 * step, cpu: 600_000 },
    ]);

    const body = (await metrics(member, 'metered?limit=5')).json();

    expect(named(body).cpu_usage_percent).toEqual([4, 2]);
    // No resources known and no GPUs: no totals, zero GPUs.
    expect(body.metrics.map((metric: { name: string }) => metric.name)).toEqual([
      'cpu_usage_percent', 'memory_usage_bytes', 'memory_working_set_bytes', 'gpus_detected_num',
    ]);
    expect(named(body).gpus_detected_num).toEqual([0, 0]);
  });

  it('answers no metrics for a single sample', async () => {
    const job = await jobOf();
    await addPoints(job.id, [{ at: t0, cpu: 1 }]);

    expect((await metrics(member, 'metered?limit=10')).json()).toEqual({ metrics: [] });
  });

  it('applies limit, after (inclusive for the previous sample) and before', async () => {
    const job = await jobOf();
    // CPU use: 10 %, 20 %, 30 % in the three windows.
    await addPoints(job.id, [
      { at: t0, cpu: 0 },
      { at: t0 + step, cpu: 1_000_000 },
      { at: t0 + 2 * step, cpu: 3_000_000 },
      { at: t0 + 3 * step, cpu: 6_000_000 },
    ]);
    const cpu = async (query: string) => {
      const body = (await metrics(member, `metered?${query}`)).json();
      const first = body.metrics[0] ?? { timestamps: [], values: [] };
      return { timestamps: first.timestamps, values: first.values };
    };

    expect(await cpu('limit=1')).toEqual({ timestamps: [at(3)], values: [30] });
    expect(await cpu('limit=2')).toEqual({ timestamps: [at(3), at(2)], values: [30, 20] });
    expect(await cpu('limit=100'))
      .toEqual({ timestamps: [at(3), at(2), at(1)], values: [30, 20, 10] });
    expect(await cpu(`limit=100&after=${at(1)}`))
      .toEqual({ timestamps: [at(3), at(2)], values: [30, 20] });
    // A microsecond later, the sample at t1 is out and the one at t2 has no predecessor.
    expect(await cpu(`limit=100&after=2026-01-02T03:04:15.250001Z`))
      .toEqual({ timestamps: [at(3)], values: [30] });
    expect(await cpu(`limit=100&before=${at(3)}`))
      .toEqual({ timestamps: [at(2), at(1)], values: [20, 10] });
    // The same instant written with an offset and a space.
    expect(await cpu(`limit=100&before=${encodeURIComponent('2026-01-02 05:04:35.25+02:00')}`))
      .toEqual({ timestamps: [at(2), at(1)], values: [20, 10] });
    expect(await cpu(`limit=1&after=${at(1)}&before=${at(3)}`))
      .toEqual({ timestamps: [at(2)], values: [20] });
    expect(await cpu('limit=0')).toEqual({ timestamps: [], values: [] });
    expect(await cpu('limit=-3')).toEqual({ timestamps: [], values: [] });
  });

  it('reads the job that replica_num, job_num and the latest submission pick', async () => {
    const first = await jobOf();
    const resubmitted = { ...first, id: newId(), submissionNum: 1 };
    const otherReplica = { ...first, id: newId(), replicaNum: 1 };
    await server.ctx.store.insert('jobs', [resubmitted, otherReplica]);
    await addPoints(first.id, [{ at: t0, cpu: 0 }, { at: t0 + step, cpu: 9_000_000 }]);
    await addPoints(resubmitted.id, [{ at: t0, cpu: 0 }, { at: t0 + step, cpu: 1_000_000 }]);
    await addPoints(otherReplica.id, [{ at: t0, cpu: 0 }, { at: t0 + step, cpu: 5_000_000 }]);

    expect(named((await metrics(member, 'metered')).json()).cpu_usage_percent).toEqual([10]);
    expect(named((await metrics(member, `metered?run_id=${runId}&replica_num=1`)).json())
      .cpu_usage_percent).toEqual([50]);
    expect((await metrics(member, 'metered?replica_num=1&job_num=1')).json()).toEqual(noJob);
  });

  it('leaves out GPU metrics when the number of GPUs changes', async () => {
    const job = await jobOf();
    await addPoints(job.id, [
      { at: t0, cpu: 0, gpuMemory: [1], gpuUtil: [1] },
      { at: t0 + step, cpu: 0, gpuMemory: [1], gpuUtil: [1] },
      { at: t0 + 2 * step, cpu: 0, gpuMemory: [1, 2], gpuUtil: [1, 2] },
    ]);

    const body = (await metrics(member, 'metered?limit=5')).json();

    expect(body.metrics.map((metric: { name: string }) => metric.name)).toEqual([
      'cpu_usage_percent', 'memory_usage_bytes', 'memory_working_set_bytes',
    ]);
  });

  it('answers 422 for an after that is no datetime', async () => {
    const bad = await metrics(member, 'metered?after=yesterday');

    expect(bad.statusCode).toBe(422);
    expect(bad.json().detail[0]).toMatchObject({ loc: ['query', 'after'] });
  });
});

describe('the metrics TTL settings', () => {
  it('come from DSTACK_SERVER_METRICS_*_TTL_SECONDS, unset when the variables are', () => {
    const settings = readServerCommandSettings([], {
      DSTACK_SERVER_METRICS_RUNNING_TTL_SECONDS: '120',
      DSTACK_SERVER_METRICS_FINISHED_TTL_SECONDS: '0',
    });
    const unset = readServerCommandSettings([], {});

    expect(settings).toMatchObject({ metricsRunningTtlSeconds: 120, metricsFinishedTtlSeconds: 0 });
    expect(unset).toMatchObject({ metricsRunningTtlSeconds: undefined });
    expect(unset).toMatchObject({ metricsFinishedTtlSeconds: undefined });
  });

  it('refuse a value that is not whole seconds, naming the variable', () => {
    const read = () =>
      readServerCommandSettings([], { DSTACK_SERVER_METRICS_FINISHED_TTL_SECONDS: '7d' });

    expect(read).toThrow(CommandLineError);
    expect(read).toThrow("Invalid DSTACK_SERVER_METRICS_FINISHED_TTL_SECONDS '7d'");
  });

  it('reach the core settings through createServer', async () => {
    const configured = await createTestServer({
      settings: { metricsRunningTtlSeconds: 60, metricsFinishedTtlSeconds: 600 },
    });

    try {
      expect(configured.ctx.settings).toMatchObject({
        metricsRunningTtlSeconds: 60,
        metricsFinishedTtlSeconds: 600,
      });
      expect(server.ctx.settings.metricsRunningTtlSeconds).toBeUndefined();
    } finally {
      await configured.close();
    }
  });
});
