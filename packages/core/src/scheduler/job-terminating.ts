import type { JobProvisioningData } from '../domain/resources.js';
import type { InstanceAgent } from '../ports/backend-provider.js';
import type { StateAccess } from '../ports/state-store.js';
import type { JobRecord } from '../records.js';
import { jobStatusForReason } from '../services/run-status.js';
import { drainAgent } from './job-logs.js';
import { nudge } from './nudge.js';
import { reasonOfAgentState } from './job-running.js';
import type { Claimed, PipelineDefinition } from './pipeline.js';
import { dueByStatus } from './pipeline.js';
import type { SchedulerRuntime } from './runtime.js';
import { errorText } from './runtime.js';

type JobItem = Claimed<'jobs'>;

/** Gives the job's slot back: the instance goes idle once no job of it is left. */
async function releaseInstance(tx: StateAccess, job: JobRecord, now: number): Promise<void> {
  if (job.instanceId === null) {
    return;
  }

  const instance = await tx.get('instances', job.instanceId);

  if (instance === undefined) {
    return;
  }

  const busyBlocks = Math.max(0, instance.busyBlocks - 1);
  const patch: Record<string, unknown> = { busyBlocks, lastJobProcessedAt: now };

  if (busyBlocks === 0 && instance.status === 'busy') {
    patch.status = 'idle';
  }

  await tx.update('instances', { id: instance.id }, patch);
}

async function finish(
  rt: SchedulerRuntime,
  item: JobItem,
  patch: Partial<JobRecord>,
): Promise<void> {
  const { ctx } = rt;
  const job = item.row;
  const now = ctx.now();
  const reason = patch.terminationReason ?? job.terminationReason;
  const status = jobStatusForReason(reason);

  const done = await ctx.store.transaction(async (tx) => {
    const ok = await item.commit({ ...patch, status, finishedAt: now, removeAt: null }, tx);

    if (ok) {
      await releaseInstance(tx, job, now);
      await nudge(tx, 'runs', job.runId);
    }

    return ok;
  });

  if (done) {
    ctx.logger.info({ runName: job.runName, jobId: job.id, status, reason }, 'job finished');
    ctx.hint?.('runs');
    ctx.hint?.('instances');
  }
}

/**
 * A job with an instance but no recorded start may still have been started: the worker that
 * submitted it may have died or lost its row before recording it. Removing it from the agent
 * ends such a process (and does nothing to a job the agent never got).
 */
async function removeUnconfirmedStart(
  rt: SchedulerRuntime,
  job: JobRecord,
  data: JobProvisioningData,
): Promise<void> {
  try {
    await rt.agents.get(job.instanceId ?? job.id, data).remove(job.id);
  } catch (error) {
    rt.ctx.logger.warn({ jobId: job.id, err: errorText(error) },
      'could not remove a job whose start was never recorded');
  }
}

/**
 * TERMINATING: ask the job to stop (SIGTERM), give it the grace period, kill it if it is
 * still there, store its last logs, then set the final status and free the instance.
 */
async function processTerminatingJob(rt: SchedulerRuntime, item: JobItem): Promise<void> {
  const { ctx } = rt;
  const job = item.row;
  const now = ctx.now();
  const data = job.provisioningData as JobProvisioningData | null;
  const submitted = job.runnerTimestamp !== null && data !== null;

  if (!submitted) {
    if (data !== null) {
      await removeUnconfirmedStart(rt, job, data);
    }

    await finish(rt, item, {});
    return;
  }

  const project = await ctx.store.get('projects', job.projectId);
  let agent: InstanceAgent;

  try {
    agent = rt.agents.get(job.instanceId ?? job.id, data);
  } catch (error) {
    await finish(rt, item, { terminationReasonMessage: errorText(error) });
    return;
  }

  const abort = job.terminationReason === 'aborted_by_user';
  const alreadyEnded = job.gracefulTerminationAttempts === -1;

  if (!alreadyEnded && job.gracefulTerminationAttempts === null) {
    try {
      await agent.stop(job.id, { force: abort });
    } catch (error) {
      ctx.logger.warn({ jobId: job.id, err: errorText(error) }, 'agent stop failed');
    }

    await item.commit({
      gracefulTerminationAttempts: 1,
      removeAt: now + (abort ? 0 : rt.options.stopGraceMillis),
    });
    return;
  }

  let drained: Awaited<ReturnType<typeof drainAgent>> | null = null;

  try {
    drained = await drainAgent(rt, item, agent, project?.name ?? '');
  } catch (error) {
    ctx.logger.warn({ jobId: job.id, err: errorText(error) }, 'final agent pull failed');
  }

  const state = drained?.last?.state ?? null;
  const stillRunning = state !== null && state.status === 'running';
  const cursor = drained?.cursor ?? job.runnerTimestamp;

  if (drained?.last?.hasMore === true) {
    await item.commit({ runnerTimestamp: cursor });
    return;
  }

  if (stillRunning && job.removeAt !== null && job.removeAt > now) {
    await item.commit({ runnerTimestamp: cursor });
    return;
  }

  if (stillRunning && (job.gracefulTerminationAttempts ?? 0) < 2) {
    // The grace period is over: kill it and collect what it wrote on the next pass.
    await agent.stop(job.id, { force: true }).catch(() => undefined);
    await item.commit({ runnerTimestamp: cursor, gracefulTerminationAttempts: 2,
      removeAt: now + 2000 });
    return;
  }

  const patch: Partial<JobRecord> = { runnerTimestamp: cursor };

  if (state !== null && state.status !== 'running' && job.exitStatus === null) {
    patch.exitStatus = state.exitStatus;
  }

  await agent.remove(job.id).catch(() => undefined);
  await finish(rt, item, patch);
}

/** The pipeline of terminating jobs. */
export function jobTerminatingPipeline(rt: SchedulerRuntime): PipelineDefinition<'jobs'> {
  return {
    name: 'JobTerminatingPipeline',
    table: 'jobs',
    due: (now) => dueByStatus(now, [[['terminating'], rt.options.intervals.jobsTerminating]]),
    process: (item) => processTerminatingJob(rt, item),
  };
}
