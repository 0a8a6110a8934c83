import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  collectJobMetrics,
  createLocalBackendProvider,
  createMemoryStateStore,
  getJobMetrics,
  silentLogger,
} from '@dstack/core';
import type {
  AgentJob,
  InstanceAgent,
  JobProvisioningData,
  JobRecord,
} from '@dstack/core';

let serverDir: string;
let agents: InstanceAgent[];
let started: string[];

function agentWith(nvidiaSmiPath: string): InstanceAgent {
  const provider = createLocalBackendProvider({ serverDir, nvidiaSmiPath });
  const agent = provider.agent({ backend: 'local', instance_id: 'slot-1' } as JobProvisioningData);
  agents.push(agent);
  return agent;
}

function busyJob(id: string): AgentJob {
  return {
    jobSubmissionId: id,
    projectName: 'main',
    runName: 'busy',
    jobName: 'busy-0-0',
    commands: ['while :; do :; done'],
    shell: 'sh',
    env: {},
    workingDir: null,
    maxDurationSeconds: null,
  };
}

async function until<T>(check: () => Promise<T | null | undefined>): Promise<T> {
  const deadline = Date.now() + 20_000;

  for (;;) {
    const value = await check();

    if (value !== null && value !== undefined) {
      return value;
    }

    if (Date.now() > deadline) {
      throw new Error('timed out waiting');
    }

    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The job's process group id, once the runner has started it. */
async function pgidOf(id: string): Promise<number> {
  return until(async () => {
    const text = await readFile(join(serverDir, 'local', 'jobs', id, 'state.json'), 'utf8')
      .catch(() => null);
    const state = text === null ? null : (JSON.parse(text) as { pid?: number });
    return state?.pid;
  });
}

beforeEach(async () => {
  serverDir = await mkdtemp(join(tmpdir(), 'local-metrics-'));
  agents = [];
  started = [];
});

afterEach(async () => {
  for (const agent of agents) {
    for (const id of started) {
      await agent.remove(id).catch(() => undefined);
    }
  }

  await rm(serverDir, { recursive: true, force: true });
});

describe('local agent metrics', () => {
  // CPU time and memory of a busy job are in the BackendProvider contract (`metrics: true`).
  it('reports no GPUs for a busy job where nvidia-smi is missing', async () => {
    const agent = agentWith(join(serverDir, 'no-nvidia-smi'));
    const id = 'busy-cpu';
    await agent.submit(busyJob(id));
    started.push(id);
    await pgidOf(id);

    const sample = await until(() => agent.metrics!(id));

    expect(sample.cpuUsageMicro).toBeGreaterThanOrEqual(0);
    expect(sample.memoryUsageBytes).toBeGreaterThan(0);
    expect(sample.gpus).toEqual([]);

    await agent.stop(id, { force: true });
    await until(async () => ((await agent.metrics!(id)) === null ? true : null));
  });

  it('answers null for a job it does not know', async () => {
    const agent = agentWith(join(serverDir, 'no-nvidia-smi'));

    expect(await agent.metrics!('never-submitted')).toBeNull();
  });

  it("reports each GPU's utilization and the memory the job's processes hold on it",
    async () => {
      const agent = agentWith(join(serverDir, 'nvidia-smi'));
      const id = 'busy-gpu';
      await agent.submit(busyJob(id));
      started.push(id);
      const pgid = await pgidOf(id);
      // nvidia-smi's CSV answers for two GPUs; the job's leader holds 300 MiB on the second,
      // another program 100 MiB on the first.
      await writeFile(join(serverDir, 'nvidia-smi'), [
        '#!/bin/sh',
        'case "$1" in',
        "  --query-gpu=*) printf 'GPU-aaaa, 37\\nGPU-bbbb, 0\\n' ;;",
        `  --query-compute-apps=*) printf '${pgid}, GPU-bbbb, 300\\n1, GPU-aaaa, 100\\n' ;;`,
        '  *) exit 2 ;;',
        'esac',
        '',
      ].join('\n'));
      await chmod(join(serverDir, 'nvidia-smi'), 0o755);

      const sample = await until(() => agent.metrics!(id));

      expect(sample.gpus).toEqual([
        { memoryUsageBytes: 0, utilPercent: 37 },
        { memoryUsageBytes: 300 * 1024 * 1024, utilPercent: 0 },
      ]);
    });
});

describe('local job metrics end to end', () => {
  it('collects two samples of a busy job and serves its CPU and memory use', async () => {
    const agent = agentWith(join(serverDir, 'no-nvidia-smi'));
    const id = 'busy-collected';
    await agent.submit(busyJob(id));
    started.push(id);
    await pgidOf(id);
    const store = createMemoryStateStore();
    const resources = { cpus: 2, memory_mib: 1024, gpus: [] };
    const job = {
      id, status: 'running', lastProcessedAt: 0, instanceId: 'slot-1', runName: 'busy',
      provisioningData: { backend: 'local', instance_id: 'slot-1', instance_type: { resources } },
      runtimeData: null,
    } as unknown as JobRecord;
    await store.insert('jobs', job);
    let offset = 0;
    const ctx = { store, logger: silentLogger, now: () => Date.now() + offset };
    const agents = { get: () => agent };

    expect(await collectJobMetrics(ctx, agents)).toBe(1);
    // The second pass skips the job until 9 s have gone by on the server's clock.
    expect(await collectJobMetrics(ctx, agents)).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    offset = 10_000;
    expect(await collectJobMetrics(ctx, agents)).toBe(1);

    const { metrics } = await getJobMetrics(store, job);
    const values = Object.fromEntries(metrics.map((metric) => [metric.name, metric.values]));

    expect(metrics.every((metric) => metric.timestamps.length === 1)).toBe(true);
    expect(values.cpu_usage_percent[0]).toBeGreaterThan(0);
    expect(values.cpu_usage_percent[0]).toBeLessThanOrEqual(200);
    expect(values.memory_usage_bytes[0]).toBeGreaterThan(0);
    expect(values.cpus_detected_num).toEqual([2]);
    expect(values.memory_total_bytes).toEqual([1024 * 1024 * 1024]);
    expect(values.gpus_detected_num).toEqual([0]);
    await store.close();
  });
});
