import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createMemoryStateStore, dueByStatus, newId, nudge, silentLogger, startPipeline,
} from '@dstack/core';
import type { StateStore } from '@dstack/core';
import type { Harness } from './jobs-harness.js';
import { createHarness, runReaches } from './jobs-harness.js';

let h: Harness;

beforeEach(async () => {
  h = await createHarness();
});

afterEach(async () => {
  await h.close();
});

describe('retry', () => {
  it('resubmits a failing job inside the window, then fails past it', async () => {
    await h.addFleet();
    h.start();
    const run = await h.submitRun({
      commands: ['echo attempt', 'exit 3'],
      retry: { on_events: ['error'], duration: 60 },
    });

    // Each back-off (15 s, then 30 s) is skipped by moving the clock.
    await runReaches(h, run.id, ['pending']);
    h.advance(16_000);
    await h.until(async () => ((await h.jobsOf(run.id)).length >= 2 ? true : undefined));
    await runReaches(h, run.id, ['pending']);
    h.advance(31_000);
    const finished = await runReaches(h, run.id, ['failed']);
    const jobs = await h.jobsOf(run.id);

    expect(finished.terminationReason).toBe('retry_limit_exceeded');
    expect(jobs.map((job) => job.submissionNum)).toEqual([0, 1, 2].slice(0, jobs.length));
    expect(jobs.length).toBeGreaterThanOrEqual(2);
    expect(jobs.every((job) => job.exitStatus === 3)).toBe(true);
    expect(jobs.every((job) => job.status === 'failed')).toBe(true);
  });

  it('does not retry events the policy does not name', async () => {
    await h.addFleet();
    h.start();
    const run = await h.submitRun({
      commands: ['exit 1'],
      retry: { on_events: ['no-capacity'], duration: 600 },
    });
    const finished = await runReaches(h, run.id, ['failed']);

    expect(finished.terminationReason).toBe('job_failed');
    expect(await h.jobsOf(run.id)).toHaveLength(1);
  });
});

describe('idle instances', () => {
  it('terminates an instance idle for longer than idle_duration', async () => {
    await h.addFleet({ idle_duration: 1 });
    h.start();
    const run = await h.submitRun({ commands: ['echo hi'] });
    await runReaches(h, run.id, ['done']);
    const [job] = await h.jobsOf(run.id);
    const before = await h.ctx.store.get('instances', job!.instanceId!);
    expect(before!.status).toBe('idle');

    h.advance(2000);
    const after = await h.until(async () => {
      const instance = await h.ctx.store.get('instances', job!.instanceId!);
      return instance?.status === 'terminated' ? instance : undefined;
    });

    expect(after.terminationReason).toBe('idle_timeout');
    expect(after.deleted).toBe(true);
    expect(h.backend.terminated).toEqual([job!.instanceId]);
  });

  it('keeps instances at the fleet minimum', async () => {
    await h.addFleet({ idle_duration: 1, nodes: { min: 1, max: 2 } });
    h.start();
    const instance = await h.until(async () => {
      const [found] = await h.ctx.store.find('instances', { where: { status: 'idle' } });
      return found;
    });
    h.advance(5000);
    await new Promise((resolve) => setTimeout(resolve, 300));

    expect((await h.ctx.store.get('instances', instance.id))!.status).toBe('idle');
  });
});

describe('restart', () => {
  it('carries on with a running job from the stored log cursor', async () => {
    await h.addFleet();
    const first = h.start();
    const run = await h.submitRun({ commands: ['echo a', 'echo b', 'echo c', 'sleep'] });
    await runReaches(h, run.id, ['running']);
    await first.stop();

    const [job] = await h.jobsOf(run.id);
    const fake = h.backend.jobs.get(job!.id)!;
    fake.events.push({ timestamp: Date.now() + 10, logSource: 'stdout', message: 'd\n' });
    fake.state = { status: 'done', exitStatus: 0, terminationReason: null, message: null };

    h.start();
    await runReaches(h, run.id, ['done']);
    const page = await h.ctx.logs.poll(
      { projectName: 'main', runName: run.runName, jobSubmissionId: job!.id, producer: 'job' },
      { limit: 100 },
    );

    expect(page.events.map((event) => event.message).join('')).toBe('a\nb\nc\nd\n');
  });

  it('ends a job whose agent stays unreachable as instance_unreachable', async () => {
    await h.addFleet();
    h.start({ unreachableMillis: 1000 });
    const run = await h.submitRun({ commands: ['sleep'] });
    await runReaches(h, run.id, ['running']);
    h.backend.unreachable = true;
    await new Promise((resolve) => setTimeout(resolve, 100));
    h.advance(5000);
    const finished = await runReaches(h, run.id, ['failed']);
    const [job] = await h.jobsOf(run.id);

    expect(finished.terminationReason).toBe('job_failed');
    expect(job!.terminationReason).toBe('instance_unreachable');
  });
});

describe('claim guarding', () => {
  it('drops the work of a worker whose lease was taken over', async () => {
    const store = createMemoryStateStore();
    const id = newId();
    await store.insert('fleets', {
      id, projectId: 'p', name: 'f', createdAt: 0, lastProcessedAt: 0, deleted: false,
      deletedAt: null, status: 'active', statusMessage: null, spec: {}, consolidationAttempt: 0,
      lockToken: null, lockOwner: null, lockExpiresAt: null,
    });
    let result: boolean | undefined;
    let heldBefore: boolean | undefined;
    const pipeline = startPipeline(
      { store, logger: silentLogger, now: Date.now },
      {
        name: 'TestPipeline',
        table: 'fleets',
        due: () => ({ status: 'active' }),
        async process(item) {
          // Another replica takes the row over while this worker is busy.
          await store.update('fleets', { id }, { lockToken: 'someone-else' });
          heldBefore = await item.held();
          result = await item.commit({ statusMessage: 'written by a stale worker' });
        },
      },
      { workers: 1, leaseMillis: 5000, maxIdleMillis: 20 },
    );

    await new Promise((resolve) => setTimeout(resolve, 100));
    await pipeline.stop();
    const row = await store.get('fleets', id);

    expect(heldBefore).toBe(false);
    expect(result).toBe(false);
    expect(row!.statusMessage).toBeNull();
    expect(row!.lockToken).toBe('someone-else');
    await store.close();
  });

  it('never hands one row to two pipelines at once', async () => {
    const store = createMemoryStateStore();
    const id = newId();
    await store.insert('fleets', {
      id, projectId: 'p', name: 'f', createdAt: 0, lastProcessedAt: 0, deleted: false,
      deletedAt: null, status: 'active', statusMessage: null, spec: {}, consolidationAttempt: 0,
      lockToken: null, lockOwner: null, lockExpiresAt: null,
    });
    let inside = 0;
    let maxInside = 0;
    let passes = 0;
    const definition = (name: string) => ({
      name,
      table: 'fleets' as const,
      due: () => ({ status: 'active' }),
      async process() {
        inside += 1;
        passes += 1;
        maxInside = Math.max(maxInside, inside);
        await new Promise((resolve) => setTimeout(resolve, 10));
        inside -= 1;
      },
    });
    const options = { workers: 4, leaseMillis: 5000, maxIdleMillis: 5 };
    const deps = { store, logger: silentLogger, now: Date.now };
    const a = startPipeline(deps, definition('A'), options);
    const b = startPipeline(deps, definition('B'), options);

    await new Promise((resolve) => setTimeout(resolve, 200));
    await Promise.all([a.stop(), b.stop()]);

    expect(passes).toBeGreaterThan(3);
    expect(maxInside).toBe(1);
    await store.close();
  });

  // A job that changes while its run is being processed nudges the run; the pass under way
  // must not bury that nudge under its own interval, or the run waits the whole interval.
  async function passesAfterNudgeDuringLease(
    store: StateStore,
    onFirstPass: 'commit' | 'throw',
  ): Promise<number> {
    const id = newId();
    await store.insert('fleets', {
      id, projectId: 'p', name: 'f', createdAt: 0, lastProcessedAt: 0, deleted: false,
      deletedAt: null, status: 'active', statusMessage: null, spec: {}, consolidationAttempt: 0,
      lockToken: null, lockOwner: null, lockExpiresAt: null,
    });
    let passes = 0;
    const pipeline = startPipeline(
      { store, logger: silentLogger, now: Date.now },
      {
        name: 'TestPipeline',
        table: 'fleets',
        due: (now) => dueByStatus(now, [[['active'], 60_000]]),
        async process(item) {
          passes += 1;

          if (passes > 1) {
            await item.commit({});
            return;
          }

          await nudge(store, 'fleets', id);

          if (onFirstPass === 'throw') {
            throw new Error('pass failed');
          }

          await item.commit({});
        },
      },
      { workers: 1, leaseMillis: 5000, maxIdleMillis: 5 },
    );

    await new Promise((resolve) => setTimeout(resolve, 150));
    await pipeline.stop();
    const row = await store.get('fleets', id);

    expect(row!.lockOwner).toBe('TestPipeline');
    expect(row!.lockToken).toBeNull();
    return passes;
  }

  it('takes a row nudged during its pass again at once after the commit', async () => {
    const store = createMemoryStateStore();

    expect(await passesAfterNudgeDuringLease(store, 'commit')).toBe(2);
    await store.close();
  });

  it('takes a row nudged during a failed pass again at once after the release', async () => {
    const store = createMemoryStateStore();

    expect(await passesAfterNudgeDuringLease(store, 'throw')).toBe(2);
    await store.close();
  });
});
