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

async function jobLog(runName: string, jobId: string): Promise<string> {
  const page = await h.ctx.logs.poll(
    { projectName: 'main', runName, jobSubmissionId: jobId, producer: 'job' },
    { limit: 1000 },
  );
  return page.events.map((event) => event.message).join('');
}

describe('a task on a fleet', () => {
  it('provisions the cheapest offer, runs the job, stores its logs and ends done', async () => {
    await h.addFleet();
    h.start();
    const run = await h.submitRun({
      commands: ['echo hello $DSTACK_RUN_NAME', 'echo two', 'echo three'],
    });

    const finished = await runReaches(h, run.id, ['done', 'failed', 'terminated']);
    const [job] = await h.jobsOf(run.id);

    expect(finished.status).toBe('done');
    expect(finished.terminationReason).toBe('all_jobs_done');
    expect(job!.status).toBe('done');
    expect(job!.terminationReason).toBe('done_by_runner');
    expect(job!.exitStatus).toBe(0);
    expect(await jobLog(run.runName, job!.id)).toBe(`hello ${run.runName}\ntwo\nthree\n`);
    expect(h.backend.created).toHaveLength(1);

    const instance = await h.ctx.store.get('instances', job!.instanceId!);
    expect(instance!.status).toBe('idle');
    expect(instance!.price).toBe(0.5);
    expect(instance!.busyBlocks).toBe(0);
    expect(finished.fleetId).not.toBeNull();
  });

  it('reuses an idle instance of the fleet before creating one', async () => {
    await h.addFleet();
    h.start();
    const first = await h.submitRun({ commands: ['echo one'] });
    await runReaches(h, first.id, ['done']);
    const second = await h.submitRun({ commands: ['echo two'] });
    await runReaches(h, second.id, ['done']);

    const [a] = await h.jobsOf(first.id);
    const [b] = await h.jobsOf(second.id);
    expect(b!.instanceId).toBe(a!.instanceId);
    expect(h.backend.created).toHaveLength(1);
  });

  it('fails with no capacity and says why when the project has no fleet', async () => {
    h.start();
    const run = await h.submitRun({ commands: ['echo hi'] });
    const finished = await runReaches(h, run.id, ['failed', 'done', 'terminated']);
    const [job] = await h.jobsOf(run.id);

    expect(finished.status).toBe('failed');
    expect(finished.terminationReason).toBe('job_failed');
    expect(job!.status).toBe('failed');
    expect(job!.terminationReason).toBe('failed_to_start_due_to_no_capacity');
    expect(job!.terminationReasonMessage).toMatch(/No fleet matches/);
  });

  it('fails with no capacity when no offer meets the requirements', async () => {
    await h.addFleet();
    h.start();
    const requirements = {
      resources: {
        cpu: { arch: null, count: { min: 64, max: null } },
        memory: { min: null, max: null },
        shm_size: null,
        gpu: { vendor: null, name: null, count: { min: 0, max: null }, memory: null,
          total_memory: null, compute_capability: null },
        disk: { size: { min: null, max: null } },
      },
      max_price: null, spot: null, reservation: null, multinode: null,
    };
    const run = await h.submitRun({ commands: ['echo hi'] }, requirements as never);
    await runReaches(h, run.id, ['failed']);
    const [job] = await h.jobsOf(run.id);

    expect(job!.terminationReason).toBe('failed_to_start_due_to_no_capacity');
    expect(job!.terminationReasonMessage).toMatch(/no offers of fleet default/);
  });

  it('reports a non-zero exit as a failed job and a failed run', async () => {
    await h.addFleet();
    h.start();
    const run = await h.submitRun({ commands: ['echo before', 'exit 3'] });
    const finished = await runReaches(h, run.id, ['failed', 'done']);
    const [job] = await h.jobsOf(run.id);

    expect(finished.status).toBe('failed');
    expect(job!.status).toBe('failed');
    expect(job!.terminationReason).toBe('container_exited_with_error');
    expect(job!.exitStatus).toBe(3);
  });

  it('gives every node its rank, the node count and the master address', async () => {
    await h.addFleet();
    h.start();
    const run = await h.submitRun({ nodes: 2, commands: ['echo rank=$DSTACK_NODE_RANK'] });
    await runReaches(h, run.id, ['done']);
    const jobs = await h.jobsOf(run.id);
    const envs = jobs.map((job) => h.backend.jobs.get(job.id)!.job.env);

    expect(jobs).toHaveLength(2);
    expect(envs.map((env) => env.DSTACK_NODE_RANK).sort()).toEqual(['0', '1']);
    expect(envs.every((env) => env.DSTACK_NODES_NUM === '2')).toBe(true);
    const master = jobs.find((job) => job.jobNum === 0)!;
    const masterIp = (master.provisioningData as { internal_ip: string }).internal_ip;
    expect(envs.every((env) => env.DSTACK_MASTER_NODE_IP === masterIp)).toBe(true);
    expect(envs[0]!.DSTACK_NODES_IPS!.split('\n')).toHaveLength(2);
    expect(new Set(jobs.map((job) => job.instanceId)).size).toBe(2);
  });

  it('passes max_duration to the agent', async () => {
    await h.addFleet();
    h.start();
    const run = await h.submitRun({ commands: ['echo hi'], max_duration: 120 });
    await runReaches(h, run.id, ['done']);
    const [job] = await h.jobsOf(run.id);
    expect(h.backend.jobs.get(job!.id)!.job.maxDurationSeconds).toBe(120);
  });
});

describe('stop and abort', () => {
  it('stops with SIGTERM first and ends the run as terminated', async () => {
    await h.addFleet();
    const scheduler = h.start();
    const run = await h.submitRun({ commands: ['echo up', 'sleep'] });
    await runReaches(h, run.id, ['running']);

    await h.ctx.store.update('runs', { id: run.id }, {
      status: 'terminating', terminationReason: 'stopped_by_user',
    });
    scheduler.hint('runs');
    const finished = await runReaches(h, run.id, ['terminated', 'failed', 'done']);
    const [job] = await h.jobsOf(run.id);

    expect(finished.status).toBe('terminated');
    expect(job!.status).toBe('terminated');
    expect(job!.terminationReason).toBe('terminated_by_user');
    expect(h.backend.jobs.get(job!.id)!.stopRequests).toEqual([{ force: false }]);
  });

  it('kills a job that ignores SIGTERM once the grace period is over', async () => {
    await h.addFleet();
    h.start();
    const run = await h.submitRun({ commands: ['trap', 'sleep'] });
    await runReaches(h, run.id, ['running']);
    await h.ctx.store.update('runs', { id: run.id }, {
      status: 'terminating', terminationReason: 'stopped_by_user',
    });
    await runReaches(h, run.id, ['terminated']);
    const [job] = await h.jobsOf(run.id);

    expect(h.backend.jobs.get(job!.id)!.stopRequests).toEqual([{ force: false }, { force: true }]);
    expect(job!.status).toBe('terminated');
  });

  it('aborts with SIGKILL at once', async () => {
    await h.addFleet();
    h.start();
    const run = await h.submitRun({ commands: ['trap', 'sleep'] });
    await runReaches(h, run.id, ['running']);
    await h.ctx.store.update('runs', { id: run.id }, {
      status: 'terminating', terminationReason: 'aborted_by_user',
    });
    await runReaches(h, run.id, ['terminated']);
    const [job] = await h.jobsOf(run.id);

    expect(job!.status).toBe('aborted');
    expect(h.backend.jobs.get(job!.id)!.stopRequests[0]).toEqual({ force: true });
  });
});
