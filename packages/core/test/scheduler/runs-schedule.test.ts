import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  applyRunPlan, deleteRuns, getRun, newId, ServerClientError, stopRuns, toWireTime,
} from '@dstack/core';
import type { Run, RunRecord } from '@dstack/core';
import type { Harness } from './jobs-harness.js';
import { createHarness, runReaches } from './jobs-harness.js';

const hourMillis = 3_600_000;

let h: Harness;

beforeEach(async () => {
  h = await createHarness();
});

afterEach(async () => {
  await h.close();
});

/** The next whole hour after `millis`: when `0 * * * *` fires. */
function nextHour(millis: number): number {
  return Math.floor(millis / hourMillis) * hourMillis + hourMillis;
}

async function applyScheduled(configuration: Record<string, unknown>): Promise<Run> {
  return applyRunPlan(h.ctx, { project: h.project, user: h.user }, {
    runSpec: {
      run_name: null,
      configuration: { type: 'task', schedule: { cron: '0 * * * *' }, ...configuration },
      ssh_key_pub: 'ssh-rsa AAAA test',
    },
    currentResource: null,
    force: false,
  });
}

/** Moves the clock just past `millis`. */
function advancePast(millis: number): void {
  h.advance(Math.max(0, millis - h.ctx.now()) + 1000);
}

async function pendingFor(runId: string, nextTriggeredAt: number): Promise<RunRecord> {
  return h.until(async () => {
    const run = await h.ctx.store.get('runs', runId);
    return run?.status === 'pending' && run.nextTriggeredAt === nextTriggeredAt ? run : undefined;
  });
}

const settle = (millis = 300) => new Promise((resolve) => setTimeout(resolve, millis));

describe('scheduled runs', () => {
  it('waits for its time, runs, waits for the next time, runs again, and stops', async () => {
    await h.addFleet();
    const applied = await applyScheduled({ commands: ['echo hi'] });
    const first = nextHour(h.ctx.now());

    expect(applied).toMatchObject({
      status: 'pending',
      status_message: 'pending',
      jobs: [],
      next_triggered_at: toWireTime(first),
    });
    expect(applied.run_spec.configuration.schedule).toEqual({ cron: ['0 * * * *'] });

    h.start();
    await settle();
    const waiting = (await h.ctx.store.get('runs', applied.id))!;

    expect(waiting.status).toBe('pending');
    expect(waiting.nextTriggeredAt).toBe(first);
    expect(await h.jobsOf(applied.id)).toEqual([]);

    advancePast(first);
    const second = first + hourMillis;
    const again = await pendingFor(applied.id, second);
    const firstJobs = await h.jobsOf(applied.id);

    expect(again).toMatchObject({ fleetId: null, resubmissionAttempt: 0 });
    expect(again.terminationReason).toBe('all_jobs_done');
    expect(firstJobs.map((job) => [job.submissionNum, job.status])).toEqual([[0, 'done']]);
    expect(firstJobs[0]!.submittedAt).toBeGreaterThanOrEqual(first);
    expect(firstJobs[0]!.fleetId).not.toBeNull();

    const wire = await getRun(h.ctx, h.project, { id: applied.id });
    expect(wire).toMatchObject({ status: 'pending', next_triggered_at: toWireTime(second) });

    await settle();
    expect(await h.jobsOf(applied.id)).toHaveLength(1);

    advancePast(second);
    await pendingFor(applied.id, second + hourMillis);
    const secondJobs = await h.jobsOf(applied.id);

    expect(secondJobs.map((job) => [job.submissionNum, job.status])).toEqual([
      [0, 'done'],
      [1, 'done'],
    ]);
    expect(secondJobs[1]!.submittedAt).toBeGreaterThanOrEqual(second);

    await stopRuns(h.ctx, h.project, [applied.run_spec.run_name!], false);
    const stopped = await runReaches(h, applied.id, ['terminated']);
    await settle();

    expect(stopped.terminationReason).toBe('stopped_by_user');
    expect((await h.ctx.store.get('runs', applied.id))!.status).toBe('terminated');
    expect(await getRun(h.ctx, h.project, { id: applied.id })).toMatchObject({
      status: 'terminated', next_triggered_at: null,
    });

    advancePast(second + hourMillis);
    await settle();
    expect(await h.jobsOf(applied.id)).toHaveLength(2);
  });

  it('stops a pending run for good; delete refuses it until then', async () => {
    const applied = await applyScheduled({ commands: ['echo hi'] });
    h.start();

    await expect(deleteRuns(h.ctx, h.project, [applied.run_spec.run_name!])).rejects.toThrow(
      new ServerClientError(`Cannot delete active runs: ['${applied.run_spec.run_name!}']`),
    );

    await stopRuns(h.ctx, h.project, [applied.run_spec.run_name!], false);
    await runReaches(h, applied.id, ['terminated']);
    advancePast(applied.next_triggered_at === null ? 0 : Date.parse(applied.next_triggered_at));
    await settle();

    expect((await h.ctx.store.get('runs', applied.id))!.status).toBe('terminated');
    expect(await h.jobsOf(applied.id)).toEqual([]);

    await deleteRuns(h.ctx, h.project, [applied.run_spec.run_name!]);
    expect((await h.ctx.store.get('runs', applied.id))!.deleted).toBe(true);
  });

  it('retries within one trigger on the back-off, then waits for the next trigger', async () => {
    await h.addFleet();
    const applied = await applyScheduled({
      commands: ['exit 3'],
      retry: { on_events: ['error'], duration: 20 },
    });
    const first = nextHour(h.ctx.now());
    h.start();

    advancePast(first);
    const retrying = await h.until(async () => {
      const run = await h.ctx.store.get('runs', applied.id);
      return run?.status === 'pending' && run.resubmissionAttempt === 1 ? run : undefined;
    });

    // The trigger time has passed, yet a retrying run waits out its back-off.
    expect(retrying.nextTriggeredAt).toBe(first);
    expect((await getRun(h.ctx, h.project, { id: applied.id })).status_message).toBe('retrying');
    await settle();
    expect(await h.jobsOf(applied.id)).toHaveLength(1);

    h.advance(16_000);
    const rescheduled = await pendingFor(applied.id, first + hourMillis);
    const jobs = await h.jobsOf(applied.id);

    expect(rescheduled).toMatchObject({
      resubmissionAttempt: 0, fleetId: null, terminationReason: 'retry_limit_exceeded',
    });
    expect(jobs.map((job) => [job.submissionNum, job.status, job.exitStatus])).toEqual([
      [0, 'failed', 3],
      [1, 'failed', 3],
    ]);
    expect((await getRun(h.ctx, h.project, { id: applied.id })).status_message).toBe('pending');
  });

  it('leaves runs waiting for a later trigger unclaimed', async () => {
    const later = h.ctx.now() + hourMillis;
    const waiting: RunRecord[] = [];

    for (let index = 0; index < 2000; index += 1) {
      waiting.push(scheduledRecord(`waiting-${index}`, later));
    }

    await h.ctx.store.insert('runs', waiting);
    const due = await applyScheduled({ commands: ['echo hi'] });
    await h.ctx.store.update('runs', { id: due.id }, { nextTriggeredAt: h.ctx.now() - 1000 });
    h.start();

    await h.until(async () => ((await h.jobsOf(due.id)).length > 0 ? true : undefined));
    await settle();
    const after = await h.ctx.store.find('runs', { where: { nextTriggeredAt: later } });

    expect(after).toHaveLength(2000);
    expect(after.every((run) => run.status === 'pending' && run.lockOwner === null &&
      run.lockToken === null && run.lastProcessedAt === run.submittedAt)).toBe(true);
  });
});

function scheduledRecord(runName: string, nextTriggeredAt: number): RunRecord {
  const submittedAt = h.ctx.now();

  return {
    id: newId(), projectId: h.project.id, userId: h.user.id, repoId: null, fleetId: null,
    runName, submittedAt, lastProcessedAt: submittedAt, status: 'pending',
    statusMessage: 'pending', terminationReason: null, resubmissionAttempt: 0,
    runSpec: {
      run_name: runName, repo_id: 'none', repo_data: { repo_type: 'virtual' },
      configuration: { type: 'task', commands: ['true'], schedule: { cron: ['0 * * * *'] } },
      profile: null,
    },
    serviceSpec: null, priority: 0, deploymentNum: 0, deleted: false, nextTriggeredAt,
    lockToken: null, lockOwner: null, lockExpiresAt: null,
  };
}
