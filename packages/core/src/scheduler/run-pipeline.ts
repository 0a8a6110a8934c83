import type { JobSpec } from '../domain/job.js';
import { isJobFinished } from '../domain/job.js';
import { nextScheduledTime } from '../domain/cron-schedule.js';
import type { RunSpec } from '../domain/run.js';
import { latestSubmissions, runSchedule } from '../domain/run.js';
import type { StateAccess, Where } from '../ports/state-store.js';
import type { JobRecord, RunRecord } from '../records.js';
import { runProfileParams } from '../services/jobs.js';
import {
  jobReasonForRunReason,
  resubmissionDelayMillis,
  retryEventForReason,
  runStatusForReason,
} from '../services/run-status.js';
import { newJobRecord, runJobSpecs } from '../services/runs.js';
import type { Claimed, PipelineDefinition } from './pipeline.js';
import { dueByStatus } from './pipeline.js';
import type { SchedulerRuntime } from './runtime.js';
import { nudge } from './nudge.js';
import type { ReplicaChanges } from './service-replicas.js';
import {
  inPlaceDeploymentUpdates,
  replicaJobSpecs,
  rollingDeploymentMaxSurge,
  scaledDownReason,
  serviceReplicaChanges,
} from './service-replicas.js';

type RunItem = Claimed<'runs'>;

/**
 * A job row no other worker holds a live lease on. A job pipeline that is submitting a job
 * to its agent commits the result only if the row stays as it claimed it; stopping the job
 * under it would drop that commit and leave the started process running with no record of
 * it. So a stop waits for the lease to end: the worker's commit nudges the run, or the next
 * pass of the run tries again.
 */
function notLeased(now: number): Where<JobRecord> {
  return { $or: [{ lockToken: null }, { lockExpiresAt: { lt: now } }] };
}

/** Moves one job to `terminating` unless another worker holds it; whether it moved. */
async function stopJob(
  access: StateAccess,
  job: Pick<JobRecord, 'id' | 'status'>,
  patch: Partial<JobRecord>,
  now: number,
): Promise<boolean> {
  const where: Where<JobRecord> = { id: job.id, status: job.status, ...notLeased(now) };
  return (await access.update('jobs', where, patch)) > 0;
}

/** Whether a finished job may be retried, and whether its retry window is still open. */
function retryVerdict(
  job: JobRecord,
  history: readonly JobRecord[],
  run: RunRecord,
  now: number,
): 'retry' | 'not-retryable' | 'limit-exceeded' {
  const retry = (job.jobSpec as JobSpec).retry;
  const event = retryEventForReason(job.terminationReason);

  if (retry === null || event === null || !retry.on_events.includes(event)) {
    return 'not-retryable';
  }

  return now - retryWindowStart(job, history, run) > retry.duration * 1000
    ? 'limit-exceeded'
    : 'retry';
}

/**
 * When a job's retry window opened: the run's submission (a scheduled run's current trigger)
 * for a job that never got capacity, otherwise the first submission of the job, so repeated
 * failures cannot retry forever. A scheduled run counts only the submissions of its current
 * trigger: earlier triggers' runs of the job are over.
 */
function retryWindowStart(job: JobRecord, history: readonly JobRecord[], run: RunRecord): number {
  const opened = run.nextTriggeredAt ?? run.submittedAt;
  const same = history.filter((h) => h.replicaNum === job.replicaNum && h.jobNum === job.jobNum &&
    (run.nextTriggeredAt === null || h.submittedAt >= run.nextTriggeredAt));
  const provisioned = same.filter((h) => h.provisioningData !== null);

  if (provisioned.length === 0) {
    return opened;
  }

  return Math.min(...same.map((h) => h.submittedAt));
}

/**
 * A pending run waiting for its schedule's trigger, as the original tells it from a retrying
 * one: no resubmission attempt under way and a trigger time set.
 */
function isScheduledWait(run: RunRecord): boolean {
  return run.resubmissionAttempt === 0 && run.nextTriggeredAt !== null;
}

/**
 * The spec of a new submission of `job`: its own while the run's deployment is the job's,
 * otherwise the one the run's current spec gives that replica, so a retry never brings back
 * an old deployment.
 */
function resubmittedSpec(run: RunRecord, job: JobRecord): JobSpec {
  if (job.deploymentNum === run.deploymentNum) {
    return job.jobSpec as JobSpec;
  }

  const specs = replicaJobSpecs(run, job.replicaNum);
  return specs.find((candidate) => candidate.job_num === job.jobNum) ?? (job.jobSpec as JobSpec);
}

async function resubmit(
  rt: SchedulerRuntime,
  run: RunRecord,
  jobs: readonly JobRecord[],
  tx: Parameters<RunItem['commit']>[1],
): Promise<void> {
  const now = rt.ctx.now();
  const access = tx ?? rt.ctx.store;

  await access.insert(
    'jobs',
    jobs.map((job) => newJobRecord(run, resubmittedSpec(run, job), job.submissionNum + 1, now)),
  );
}

/**
 * All jobs of a terminating run are over: it gets its final status, or, when it is scheduled
 * and the user did not stop it, waits for its next trigger without a fleet or retry count.
 */
async function finishRun(rt: SchedulerRuntime, item: RunItem): Promise<void> {
  const { ctx } = rt;
  const run = item.row;
  const schedule = runSchedule(run.runSpec as RunSpec);
  const byUser = run.terminationReason === 'stopped_by_user' ||
    run.terminationReason === 'aborted_by_user';
  const next = schedule === null || byUser ? null : nextScheduledTime(schedule, ctx.now());

  if (next !== null) {
    const patch = {
      status: 'pending', statusMessage: 'pending', nextTriggeredAt: next, fleetId: null,
      resubmissionAttempt: 0,
    };

    if (await item.commit(patch)) {
      ctx.logger.info({ runName: run.runName, nextTriggeredAt: next }, 'run scheduled again');
    }

    return;
  }

  const status = runStatusForReason(run.terminationReason);

  if (await item.commit({ status, statusMessage: status })) {
    ctx.logger.info({ runName: run.runName, status }, 'run finished');
  }
}

/** TERMINATING: stop every unfinished job, then settle on the final status. */
async function processTerminatingRun(
  rt: SchedulerRuntime,
  item: RunItem,
  latest: readonly JobRecord[],
): Promise<void> {
  const { ctx } = rt;
  const run = item.row;
  const jobReason = jobReasonForRunReason(run.terminationReason);
  const unfinished = latest.filter((job) => !isJobFinished(job.status));

  if (unfinished.length === 0) {
    await finishRun(rt, item);
    return;
  }

  const now = ctx.now();

  for (const job of unfinished) {
    if (job.status !== 'terminating') {
      await stopJob(ctx.store, job,
        { status: 'terminating', terminationReason: jobReason, lockOwner: null }, now);
    } else if (jobReason === 'aborted_by_user' && job.terminationReason !== 'aborted_by_user' &&
      job.gracefulTerminationAttempts !== -1) {
      // An abort during a graceful stop kills at once; the terminating pipeline's own commit
      // would undo it, so it too waits for that pipeline's lease to end.
      await stopJob(ctx.store, job,
        { terminationReason: jobReason, removeAt: null, gracefulTerminationAttempts: null }, now);
    }
  }

  ctx.hint?.('jobs');
}

/** A scheduled run's trigger has come: its jobs start again as new submissions. */
async function triggerScheduledRun(
  rt: SchedulerRuntime,
  item: RunItem,
  latest: readonly JobRecord[],
): Promise<void> {
  const run = item.row;
  const now = rt.ctx.now();

  if (run.nextTriggeredAt === null || now < run.nextTriggeredAt) {
    return;
  }

  const spec = run.runSpec as RunSpec;
  const patch = { status: 'submitted', statusMessage: 'submitted', fleetId: null };

  const started = await rt.ctx.store.transaction(async (tx) => {
    if (!(await item.commit(patch, tx))) {
      return false;
    }

    const submitted = { ...run, fleetId: null };

    if (latest.length > 0) {
      await resubmit(rt, submitted, latest, tx);
    } else {
      const specs = runJobSpecs(spec, run.runName);
      await tx.insert('jobs', specs.map((job) => newJobRecord(submitted, job, 0, now)));
    }

    return true;
  });

  if (started) {
    rt.ctx.logger.info({ runName: run.runName, triggeredAt: run.nextTriggeredAt }, 'run triggered');
    rt.ctx.hint?.('jobs');
  }
}

/**
 * PENDING: a scheduled run (no retry under way) starts at its trigger time; a retrying one
 * resubmits every job once the back-off has passed, unless the window closes first.
 */
async function processPendingRun(
  rt: SchedulerRuntime,
  item: RunItem,
  jobs: readonly JobRecord[],
  latest: readonly JobRecord[],
): Promise<void> {
  const now = rt.ctx.now();
  const run = item.row;

  if (isScheduledWait(run)) {
    await triggerScheduledRun(rt, item, latest);
    return;
  }

  const lastFinished = Math.max(run.submittedAt, ...latest.map((job) => job.finishedAt ?? 0));
  const dueAt = lastFinished + resubmissionDelayMillis(run.resubmissionAttempt);
  const closed = latest.some((job) => retryVerdict(job, jobs, run, dueAt) === 'limit-exceeded');

  if (closed) {
    await item.commit({ status: 'terminating', terminationReason: 'retry_limit_exceeded' });
    rt.ctx.hint?.('runs');
    return;
  }

  if (now < dueAt) {
    return;
  }

  await rt.ctx.store.transaction(async (tx) => {
    if (await item.commit({ status: 'submitted', statusMessage: 'submitted', fleetId: null }, tx)) {
      await resubmit(rt, { ...run, fleetId: null }, latest, tx);
    }
  });
  rt.ctx.hint?.('jobs');
}

/**
 * No surge while an old replica runs on a backend whose jobs share their host's ports and
 * the new deployment listens on the port it does: the new replica could not bind it.
 */
function maxSurgeOf(rt: SchedulerRuntime, run: RunRecord, latest: readonly JobRecord[]): number {
  const port = replicaJobSpecs(run, 0)[0]?.service_port ?? null;
  const collides = latest.some((job) => {
    const backend = (job.provisioningData as { backend?: string } | null)?.backend;
    return job.deploymentNum < run.deploymentNum && !isJobFinished(job.status) &&
      backend !== undefined &&
      rt.ctx.providers.get(backend)?.capabilities.sharedHostPorts === true &&
      (job.jobSpec as JobSpec).service_port === port;
  });

  return collides ? 0 : rollingDeploymentMaxSurge;
}

/**
 * The replica work of an active run's pass: services scale and roll out new deployments;
 * other runs only move their jobs to a new deployment in place (their updatable fields never
 * change a job spec).
 */
function replicaChangesOf(
  rt: SchedulerRuntime,
  run: RunRecord,
  jobs: readonly JobRecord[],
  latest: readonly JobRecord[],
  now: number,
): ReplicaChanges {
  if ((run.runSpec as RunSpec).configuration.type === 'service') {
    return serviceReplicaChanges(run, jobs, latest, now, maxSurgeOf(rt, run, latest));
  }

  return { inserts: [], updates: inPlaceDeploymentUpdates(run, latest) };
}

/** Commits the run's status with the replica changes in one transaction. */
async function commitActiveRun(
  rt: SchedulerRuntime,
  item: RunItem,
  patch: Partial<RunRecord>,
  changes: ReplicaChanges,
  latest: readonly JobRecord[],
): Promise<void> {
  const { ctx } = rt;
  const run = item.row;
  const now = ctx.now();
  const byId = new Map(latest.map((job) => [job.id, job]));
  let stopped = 0;
  let moved = 0;

  await ctx.store.transaction(async (tx) => {
    stopped = 0;
    moved = 0;

    if (!(await item.commit(patch, tx))) {
      return;
    }

    if (changes.inserts.length > 0) {
      await tx.insert('jobs', changes.inserts);
    }

    for (const [id, update] of changes.updates) {
      const status = byId.get(id)?.status;

      if (update.status !== undefined && status !== undefined) {
        // A stopped job is due for its terminating pipeline at once.
        stopped += Number(await stopJob(tx, { id, status }, { ...update, lockOwner: null }, now));
        continue;
      }

      const where = { id, ...(status === undefined ? {} : { status }) };
      moved += await tx.update('jobs', where, update);
    }

    // Another pass follows at once: a step of a rollout may enable the next. A pass that
    // changed nothing (its stops wait for other workers' leases) is not repeated at once.
    if (changes.inserts.length > 0 || stopped > 0 || moved > 0) {
      await nudge(tx, 'runs', run.id);
    }
  });

  if (changes.inserts.length === 0 && stopped === 0 && moved === 0) {
    return;
  }

  ctx.logger.info({
    runName: run.runName,
    deploymentNum: run.deploymentNum,
    started: changes.inserts.length,
    stopped,
    movedInPlace: moved,
  }, 'run replicas changed');
  ctx.hint?.('jobs');
}

/**
 * An active run: its status follows from the latest submission of each job; replicas a
 * scale-down or a rollout stopped no longer count.
 */
async function processActiveRun(
  rt: SchedulerRuntime,
  item: RunItem,
  jobs: readonly JobRecord[],
  allLatest: readonly JobRecord[],
): Promise<void> {
  const { ctx } = rt;
  const run = item.row;
  const now = ctx.now();
  const latest = allLatest.filter((job) => job.terminationReason !== scaledDownReason);
  const failed = latest.filter((job) => isJobFinished(job.status) && job.status !== 'done');
  const toRetry: JobRecord[] = [];

  for (const job of failed) {
    const verdict = retryVerdict(job, jobs, run, now);

    if (verdict === 'not-retryable') {
      await item.commit({ status: 'terminating', terminationReason: 'job_failed' });
      ctx.hint?.('runs');
      return;
    }

    if (verdict === 'limit-exceeded') {
      await item.commit({ status: 'terminating', terminationReason: 'retry_limit_exceeded' });
      ctx.hint?.('runs');
      return;
    }

    toRetry.push(job);
  }

  const stopCriteria = runProfileParams(run.runSpec as RunSpec).stop_criteria;
  const master = latest.find((job) => job.jobNum === 0);

  if (stopCriteria === 'master-done' && master?.status === 'done') {
    await item.commit({ status: 'terminating', terminationReason: 'all_jobs_done' });
    ctx.hint?.('runs');
    return;
  }

  const active = latest.filter((job) => !isJobFinished(job.status));

  if (latest.length > 0 && latest.every((job) => job.status === 'done')) {
    await item.commit({ status: 'terminating', terminationReason: 'all_jobs_done' });
    ctx.hint?.('runs');
    return;
  }

  if (toRetry.length > 0 && active.length === 0) {
    await item.commit({
      status: 'pending',
      statusMessage: 'pending',
      resubmissionAttempt: run.resubmissionAttempt + 1,
    });
    return;
  }

  if (toRetry.length > 0) {
    await ctx.store.transaction(async (tx) => {
      if (await item.commit({}, tx)) {
        await resubmit(rt, run, toRetry, tx);
      }
    });
    ctx.hint?.('jobs');
    return;
  }

  let status = run.status;

  if (active.some((job) => job.status === 'running')) {
    status = 'running';
  } else if (active.some((job) => job.status === 'provisioning' || job.status === 'pulling')) {
    status = 'provisioning';
  } else if (active.some((job) => job.status === 'submitted')) {
    status = 'submitted';
  }

  const patch = status === run.status ? {} : { status, statusMessage: status };
  // A job that is stopping for its own reasons is judged (retry or fail) once it ends; until
  // then its replica is neither replaced nor counted.
  const settling = latest.some((job) => job.status === 'terminating');
  const changes = settling
    ? { inserts: [], updates: new Map() }
    : replicaChangesOf(rt, run, jobs, allLatest, now);
  await commitActiveRun(rt, item, patch, changes, allLatest);
}

async function processRun(rt: SchedulerRuntime, item: RunItem): Promise<void> {
  const run = item.row;
  const jobs = await rt.ctx.store.find('jobs', { where: { runId: run.id } });
  const latest = latestSubmissions(jobs);

  if (run.status === 'terminating') {
    await processTerminatingRun(rt, item, latest);
  } else if (run.status === 'pending') {
    await processPendingRun(rt, item, jobs, latest);
  } else {
    await processActiveRun(rt, item, jobs, latest);
  }
}

/**
 * Pending runs worth a look: retrying ones at the usual interval, scheduled ones only once
 * their trigger time has come, so runs waiting for a trigger cost nothing until then.
 * TODO: the original also wakes pending services scaled to zero; that needs autoscaling.
 */
function duePendingRuns(now: number, intervalMillis: number): Where<RunRecord>[] {
  const retrying = { status: 'pending', resubmissionAttempt: { gt: 0 } } as const;
  const triggered = {
    status: 'pending', resubmissionAttempt: 0, nextTriggeredAt: { lte: now },
  } as const;
  const waited = { lastProcessedAt: { lte: now - intervalMillis } };

  return [
    { ...retrying, lockOwner: null },
    { ...retrying, ...waited },
    { ...triggered, lockOwner: null },
    { ...triggered, ...waited },
  ];
}

/** The pipeline of runs that are starting, retrying or terminating. */
export function runPipeline(rt: SchedulerRuntime): PipelineDefinition<'runs'> {
  const { intervals } = rt.options;

  return {
    name: 'RunPipeline',
    table: 'runs',
    due: (now) => {
      const active = dueByStatus<RunRecord>(now, [
        [['submitted', 'terminating'], intervals.runsTerminating],
        [['provisioning'], intervals.runsActive],
      ]);

      return { $or: [...(active.$or ?? []), ...duePendingRuns(now, intervals.runsActive)] };
    },
    process: (item) => processRun(rt, item),
  };
}

/** The pipeline of running runs: jobs nudge their run when they change, so it is rarely due. */
export function runningRunPipeline(rt: SchedulerRuntime): PipelineDefinition<'runs'> {
  return {
    name: 'RunningRunPipeline',
    table: 'runs',
    due: (now) => dueByStatus(now, [[['running'], rt.options.intervals.runsRunning]]),
    process: (item) => processRun(rt, item),
  };
}
