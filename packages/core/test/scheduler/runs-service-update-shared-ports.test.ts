import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { applyRunPlan, getRunPlan, latestSubmissions } from '@dstack/core';
import type { BackendCapabilities, Run } from '@dstack/core';
import type { Harness } from './jobs-harness.js';
import { createHarness } from './jobs-harness.js';
import { servingAt, watchRun } from './service-rollout-helpers.js';

// Backends whose jobs share their host's ports (local, SSH) cannot start a new replica
// beside the one it replaces: the rollout stops one old replica before starting its successor.
let h: Harness;

beforeEach(async () => {
  h = await createHarness();
  (h.backend.provider.capabilities as BackendCapabilities).sharedHostPorts = true;
  await h.addFleet();
});

afterEach(async () => {
  await h.close();
});

const actor = () => ({ project: h.project, user: h.user });

function service(replicas: number, greeting: string): Record<string, unknown> {
  return {
    run_name: 'svc',
    ssh_key_pub: 'ssh-rsa AAAA test',
    configuration: {
      type: 'service', commands: ['sleep'], port: 8000, replicas, env: { GREETING: greeting },
    },
  };
}

async function planAndApply(runSpec: Record<string, unknown>): Promise<Run> {
  const planned = await getRunPlan(h.ctx, actor(), runSpec);
  return applyRunPlan(h.ctx, actor(), {
    runSpec, currentResource: planned.current_resource, force: false,
  });
}

describe('a rollout on a backend whose jobs share their host ports', () => {
  it('replaces a 2-replica service one replica at a time, never three at once', async () => {
    h.start();
    const created = await planAndApply(service(2, 'one'));
    await servingAt(h, created.id, 2, 0);

    const seen = await watchRun(h, created.id, async () => {
      await planAndApply(service(2, 'two'));
      await servingAt(h, created.id, 2, 1);
    });
    const jobs = await h.jobsOf(created.id);
    const serving = latestSubmissions(jobs).filter((job) => job.status === 'running');

    expect(seen.most).toBe(2);
    expect(seen.fewest).toBe(1);
    expect(serving.map((job) => (job.jobSpec as { env: unknown }).env)).toEqual([
      expect.objectContaining({ GREETING: 'two' }),
      expect.objectContaining({ GREETING: 'two' }),
    ]);
    expect(jobs.filter((job) => job.deploymentNum === 0).map((job) => job.terminationReason))
      .toEqual(['scaled_down', 'scaled_down']);
    expect((await h.ctx.store.get('runs', created.id))!.status).toBe('running');
  });

  it('replaces a single replica: the old one ends before the new one starts', async () => {
    h.start();
    const created = await planAndApply(service(1, 'one'));
    const [before] = await servingAt(h, created.id, 1, 0);

    const seen = await watchRun(h, created.id, async () => {
      await planAndApply(service(1, 'two'));
      await servingAt(h, created.id, 1, 1);
    });
    const old = await h.ctx.store.get('jobs', before!.id);

    expect(seen.most).toBe(1);
    expect(old!.status).toBe('terminated');
    expect(old!.terminationReason).toBe('scaled_down');
    expect((await h.ctx.store.get('runs', created.id))!.status).toBe('running');
  });
});
