import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { applyRunPlan, getRunPlan, latestSubmissions, ServerClientError } from '@dstack/core';
import type { JobRecord, Run, RunPlan } from '@dstack/core';
import type { Harness } from './jobs-harness.js';
import { createHarness } from './jobs-harness.js';
import { servingAt, watchRun } from './service-rollout-helpers.js';

let h: Harness;

beforeEach(async () => {
  h = await createHarness();
  await h.addFleet();
});

afterEach(async () => {
  await h.close();
});

const actor = () => ({ project: h.project, user: h.user });

function runSpec(configuration: Record<string, unknown>): Record<string, unknown> {
  return { run_name: 'svc', configuration, ssh_key_pub: 'ssh-rsa AAAA test' };
}

function service(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { type: 'service', commands: ['sleep'], port: 8000, env: { GREETING: 'one' }, ...extra };
}

async function plan(configuration: Record<string, unknown>): Promise<RunPlan> {
  return getRunPlan(h.ctx, actor(), runSpec(configuration));
}

/** get_plan, then apply with the plan's current resource, as the CLI does. */
async function planAndApply(configuration: Record<string, unknown>): Promise<Run> {
  const planned = await plan(configuration);
  return applyRunPlan(h.ctx, actor(), {
    runSpec: runSpec(configuration),
    currentResource: planned.current_resource,
    force: false,
  });
}

async function latestOf(runId: string): Promise<JobRecord[]> {
  return latestSubmissions(await h.jobsOf(runId));
}

describe('re-applying a changed service', () => {
  it('rolls an env change out to a 2-replica service, one surge replica at a time', async () => {
    h.start();
    const created = await planAndApply(service({ replicas: 2 }));
    const before = await servingAt(h, created.id, 2, 0);

    const planned = await plan(service({ replicas: 2, env: { GREETING: 'two' } }));
    expect(planned.action).toBe('update');
    expect(planned.current_resource?.id).toBe(created.id);

    let updated: Run | undefined;
    const seen = await watchRun(h, created.id, async () => {
      updated = await planAndApply(service({ replicas: 2, env: { GREETING: 'two' } }));
      await servingAt(h, created.id, 2, 1);
    });

    expect(updated!.id).toBe(created.id);
    expect(updated!.deployment_num).toBe(1);
    expect(updated!.run_spec.configuration.env).toEqual({ GREETING: 'two' });
    expect(seen.fewest).toBe(2);
    // One surge replica at most: two wanted plus one.
    expect(seen.most).toBe(3);
    expect([...seen.statuses]).toEqual(['running']);

    const jobs = await h.jobsOf(created.id);
    const old = jobs.filter((job) => before.some((b) => b.id === job.id));
    expect(old.map((job) => [job.status, job.terminationReason, job.deploymentNum])).toEqual([
      ['terminated', 'scaled_down', 0],
      ['terminated', 'scaled_down', 0],
    ]);

    // Replica 2 came first; the highest old replica (1) went first and came back as the
    // second new one; old replica 0 then stopped and stays stopped.
    const latest = await latestOf(created.id);
    expect(latest.map((job) =>
      [job.replicaNum, job.submissionNum, job.status, job.deploymentNum])).toEqual([
      [0, 0, 'terminated', 0],
      [1, 1, 'running', 1],
      [2, 0, 'running', 1],
    ]);
    expect(jobs.filter((job) => job.deploymentNum === 1)).toHaveLength(2);
    const serving = latest.filter((job) => job.status === 'running');

    for (const job of serving) {
      expect(h.backend.jobs.get(job.id)!.job.env.GREETING).toBe('two');
    }

    const run = await h.ctx.store.get('runs', created.id);
    expect([run!.status, run!.deploymentNum]).toEqual(['running', 1]);
    const events = await h.ctx.store.find('events', { where: {} });
    expect(events.map((event) => event.message)).toContain(
      'Run updated. Deployment: 1. Changed fields: configuration.env',
    );
  });

  it('scales replicas 1 → 3 → 1 in place, stopping the highest replica numbers', async () => {
    h.start();
    const created = await planAndApply(service({ replicas: 1 }));
    const [first] = await servingAt(h, created.id, 1, 0);

    const up = await planAndApply(service({ replicas: 3 }));
    expect(up.deployment_num).toBe(1);
    const three = await servingAt(h, created.id, 3, 1);
    expect(three.map((job) => job.replicaNum)).toEqual([0, 1, 2]);
    // Replica 0 moved to the new deployment without a restart.
    expect(three[0]!.id).toBe(first!.id);

    const down = await planAndApply(service({ replicas: 1 }));
    expect(down.deployment_num).toBe(2);
    const one = await servingAt(h, created.id, 1, 2);

    expect(one.map((job) => [job.id, job.replicaNum])).toEqual([[first!.id, 0]]);
    expect(h.backend.jobs.get(first!.id)!.stopRequests).toEqual([]);
    const stopped = (await latestOf(created.id)).filter((job) => job.replicaNum > 0);
    expect(stopped.map((job) => [job.replicaNum, job.status, job.terminationReason])).toEqual([
      [1, 'terminated', 'scaled_down'],
      [2, 'terminated', 'scaled_down'],
    ]);
    expect((await h.ctx.store.get('runs', created.id))!.status).toBe('running');
  });

  it('keeps a replicas range at its minimum and rolls it out like a fixed count', async () => {
    h.start();
    const scaling = { metric: 'rps', target: 10 };
    const created = await planAndApply(service({ replicas: '1..3', scaling }));
    const [first] = await servingAt(h, created.id, 1, 0);

    // Passes go by with no autoscaling: still one replica.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await latestOf(created.id)).toHaveLength(1);

    const updated = await planAndApply(
      service({ replicas: '1..3', scaling, env: { GREETING: 'two' } }),
    );
    expect(updated.deployment_num).toBe(1);
    const [next] = await servingAt(h, created.id, 1, 1);

    expect(next!.id).not.toBe(first!.id);
    expect((await h.ctx.store.get('jobs', first!.id))!.terminationReason).toBe('scaled_down');
  });

  it('refuses a change of a field that cannot be updated, with the original message', async () => {
    h.start();
    const created = await planAndApply(service());
    await servingAt(h, created.id, 1, 0);

    const planned = await plan(service({ auth: false }));
    expect(planned.action).toBe('create');

    const error = await planAndApply(service({ auth: false })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ServerClientError);
    expect((error as ServerClientError).body()).toEqual({
      detail: [{ msg: 'Cannot override active run. Stop the run first.', code: 'error' }],
    });

    const run = await h.ctx.store.get('runs', created.id);
    expect(run!.deploymentNum).toBe(0);
    expect((run!.runSpec as { configuration: { auth: boolean } }).configuration.auth).toBe(true);
  });

  it('checks the plan the client saw unless forced', async () => {
    h.start();
    const created = await planAndApply(service());
    await servingAt(h, created.id, 1, 0);

    const stale = applyRunPlan(h.ctx, actor(), {
      runSpec: runSpec(service({ env: { GREETING: 'two' } })),
      currentResource: null,
      force: false,
    });
    await expect(stale).rejects.toThrow(
      'Failed to apply plan. Resource has been changed. Try again or use force apply.',
    );

    const forced = await applyRunPlan(h.ctx, actor(), {
      runSpec: runSpec(service({ env: { GREETING: 'two' } })),
      currentResource: null,
      force: true,
    });
    expect([forced.id, forced.deployment_num]).toEqual([created.id, 1]);
  });
});

describe('re-applying a task', () => {
  const task = (commands: string[]) => ({ type: 'task', commands });

  it('takes the same spec in place without restarting and refuses changed commands', async () => {
    h.start();
    const created = await planAndApply(task(['sleep']));
    const [job] = await servingAt(h, created.id, 1, 0);

    const planned = await plan(task(['sleep']));
    expect(planned.action).toBe('update');
    const again = await planAndApply(task(['sleep']));
    expect([again.id, again.deployment_num]).toEqual([created.id, 1]);
    const [moved] = await servingAt(h, created.id, 1, 1);
    expect(moved!.id).toBe(job!.id);
    expect(await h.jobsOf(created.id)).toHaveLength(1);

    expect((await plan(task(['echo changed']))).action).toBe('create');
    await expect(planAndApply(task(['echo changed'])))
      .rejects.toThrow('Cannot override active run. Stop the run first.');
    expect(h.backend.jobs.get(job!.id)!.stopRequests).toEqual([]);
  });
});

describe('which changes get_plan takes as an update', () => {
  const cases: [string, Record<string, unknown>, Record<string, unknown>, string][] = [
    ['service commands', service(), service({ commands: ['sleep', 'echo more'] }), 'update'],
    ['service port', service(), service({ port: 9000 }), 'update'],
    ['service replicas', service(), service({ replicas: 2 }), 'update'],
    ['service resources', service(), service({ resources: { cpu: 4 } }), 'update'],
    ['service https unset to true', service(), service({ https: true }), 'update'],
    ['service https to false', service(), service({ https: false }), 'create'],
    ['service strip_prefix', service(), service({ strip_prefix: false }), 'create'],
    ['service to task', service(), { type: 'task', commands: ['sleep'] }, 'create'],
    ['task priority', { type: 'task', commands: ['sleep'] },
      { type: 'task', commands: ['sleep'], priority: 10 }, 'update'],
    ['task env', { type: 'task', commands: ['sleep'] },
      { type: 'task', commands: ['sleep'], env: { A: 'b' } }, 'create'],
    ['dev-environment inactivity_duration', { type: 'dev-environment', ide: 'vscode' },
      { type: 'dev-environment', ide: 'vscode', inactivity_duration: '1h' }, 'update'],
    ['dev-environment ide', { type: 'dev-environment', ide: 'vscode' },
      { type: 'dev-environment', ide: 'cursor' }, 'create'],
  ];

  it.each(cases)('%s', async (_name, before, after, action) => {
    await planAndApply(before);
    expect((await plan(after)).action).toBe(action);
  });
});
