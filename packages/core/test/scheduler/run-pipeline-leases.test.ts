import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { applyRunPlan, getRunPlan, stopRuns } from '@dstack/core';
import type { AgentJob, InstanceAgent, JobRecord } from '@dstack/core';
import type { Harness } from './jobs-harness.js';
import { createHarness } from './jobs-harness.js';

let h: Harness;

beforeEach(async () => {
  h = await createHarness();
  await h.addFleet();
});

afterEach(async () => {
  await h.close();
});

const actor = () => ({ project: h.project, user: h.user });

/**
 * Holds every agent submit until `open()`: the job's provisioning worker keeps its lease on
 * the job row the whole time, as it does while a slow host receives the job.
 */
function gateSubmits(): { open(): void; waiting(): number } {
  const agent: InstanceAgent = h.backend.provider.agent({} as never);
  const submit = agent.submit.bind(agent);
  let release!: () => void;
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  let waiting = 0;

  agent.submit = async (job: AgentJob) => {
    waiting += 1;
    await gate;
    return submit(job);
  };

  return { open: () => release(), waiting: () => waiting };
}

async function onlyJob(runId: string): Promise<JobRecord> {
  const jobs = await h.jobsOf(runId);
  expect(jobs).toHaveLength(1);
  return jobs[0]!;
}

/** The job ends in the store and its process on the agent was told to stop. */
async function stoppedOnAgent(runId: string): Promise<JobRecord> {
  return h.until(async () => {
    const job = await onlyJob(runId);
    const agentJob = h.backend.jobs.get(job.id);
    const ended = ['terminated', 'failed', 'done'].includes(job.status);
    return ended && agentJob !== undefined && agentJob.state.status !== 'running'
      ? job
      : undefined;
  }, 15_000);
}

describe('the run pipeline leaves jobs under another worker\'s lease alone', () => {
  it('stops a job the user stopped while its submit was under way on the agent', async () => {
    const gate = gateSubmits();
    h.start();
    const run = await h.submitRun({ commands: ['sleep'] });
    await h.until(async () => (gate.waiting() > 0 ? true : undefined));

    await stopRuns(h.ctx, h.project, [run.runName], false);
    const stoppedAt = h.ctx.now();
    // Passes of the terminating run go by (every 20 ms) while the submit is still held.
    await h.until(async () => {
      const current = await h.ctx.store.get('runs', run.id);
      return current!.lastProcessedAt > stoppedAt + 300 ? true : undefined;
    });
    gate.open();

    const job = await stoppedOnAgent(run.id);
    expect(job.status).toBe('terminated');
    expect(job.terminationReason).toBe('terminated_by_user');
    expect(h.backend.jobs.get(job.id)!.stopRequests.length).toBeGreaterThan(0);
    expect((await h.ctx.store.get('runs', run.id))!.status).toBe('terminated');
  });

  it('stops a replica scaled down while its submit was under way on the agent', async () => {
    const gate = gateSubmits();
    h.start();
    const configuration = {
      type: 'service', commands: ['sleep'], port: 8000, replicas: 1,
    };
    const spec = (replicas: number) => ({
      run_name: 'svc', configuration: { ...configuration, replicas },
      ssh_key_pub: 'ssh-rsa AAAA test',
    });
    const created = await applyRunPlan(h.ctx, actor(), {
      runSpec: spec(1), currentResource: null, force: false,
    });
    await h.until(async () => (gate.waiting() > 0 ? true : undefined));

    const planned = await getRunPlan(h.ctx, actor(), spec(0));
    expect(planned.action).toBe('update');
    await applyRunPlan(h.ctx, actor(), {
      runSpec: spec(0), currentResource: planned.current_resource, force: false,
    });
    // The run pipeline has seen the new deployment (the job moved to it in place), and more
    // of its passes (every 20 ms) go by while the submit is still held.
    await h.until(async () => ((await onlyJob(created.id)).deploymentNum === 1 ? true : undefined));
    const movedAt = h.ctx.now();
    await h.until(async () => {
      const current = await h.ctx.store.get('runs', created.id);
      return current!.lastProcessedAt > movedAt + 300 ? true : undefined;
    });
    gate.open();

    const job = await stoppedOnAgent(created.id);
    expect([job.status, job.terminationReason]).toEqual(['terminated', 'scaled_down']);
    expect(h.backend.jobs.get(job.id)!.stopRequests.length).toBeGreaterThan(0);
  });
});
