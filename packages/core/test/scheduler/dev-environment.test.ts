import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Harness } from './jobs-harness.js';
import { createHarness, runReaches } from './jobs-harness.js';

let h: Harness;

beforeEach(async () => {
  h = await createHarness();
});

afterEach(async () => {
  await h.close();
});

describe('dev environments', () => {
  it('stop once inactive past inactivity_duration', async () => {
    await h.addFleet();
    h.start();
    const run = await h.submitRun({
      type: 'dev-environment', ide: 'vscode', commands: undefined, inactivity_duration: 1800,
    });
    await runReaches(h, run.id, ['running']);

    h.advance(1799 * 1000);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect((await h.ctx.store.get('runs', run.id))!.status).toBe('running');

    h.advance(2000);
    const finished = await runReaches(h, run.id, ['terminated', 'failed', 'done']);
    const [job] = await h.jobsOf(run.id);

    expect(job!.status).toBe('terminated');
    expect(job!.terminationReason).toBe('inactivity_duration_exceeded');
    expect(job!.terminationReasonMessage).toBe('inactive for 1800 s');
    expect(h.backend.jobs.get(job!.id)!.stopRequests[0]).toEqual({ force: false });
    expect([finished.status, finished.terminationReason]).toEqual(['failed', 'job_failed']);
  });

  it('run until stopped without inactivity_duration', async () => {
    await h.addFleet();
    h.start();
    const run = await h.submitRun({ type: 'dev-environment', ide: 'vscode', commands: undefined });
    await runReaches(h, run.id, ['running']);

    h.advance(7 * 24 * 3600 * 1000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const [job] = await h.jobsOf(run.id);

    expect((await h.ctx.store.get('runs', run.id))!.status).toBe('running');
    expect(job!.status).toBe('running');
  });
});
