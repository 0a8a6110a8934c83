import { afterEach, beforeEach, describe, expect, it } from 'vitest';
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

describe('a job whose start was never recorded', () => {
  it('is removed from the agent, so a process the agent did start does not live on', async () => {
    // The agent starts the job, then the answer is lost (a connection dropped mid-reply):
    // the server never records the start and ends the job as executor_error.
    const agent: InstanceAgent = h.backend.provider.agent({} as never);
    const submit = agent.submit.bind(agent);
    agent.submit = async (job: AgentJob) => {
      await submit(job);
      throw new Error('connection dropped before the agent answered');
    };
    h.start();
    const run = await h.submitRun({ commands: ['echo up', 'sleep'] });

    const job = await h.until(async (): Promise<JobRecord | undefined> => {
      const [row] = await h.jobsOf(run.id);
      return row !== undefined && ['failed', 'terminated'].includes(row.status) ? row : undefined;
    }, 15_000);
    const onAgent = h.backend.jobs.get(job.id)!;

    expect(job.terminationReason).toBe('executor_error');
    expect(job.runnerTimestamp).toBeNull();
    expect(onAgent.removed).toBe(true);
    expect(onAgent.state.status).toBe('terminated');
  });
});
