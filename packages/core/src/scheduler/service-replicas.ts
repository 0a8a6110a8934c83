import { isDeepStrictEqual } from 'node:util';
import type { JobSpec } from '../domain/job.js';
import { isJobFinished } from '../domain/job.js';
import type { RunSpec } from '../domain/run.js';
import type { JobRecord, RunRecord } from '../records.js';
import { buildJobSpecs, replicasOf } from '../services/jobs.js';
import { runRequirements } from '../services/run-spec.js';
import { newJobRecord } from '../services/runs.js';

/** At most this many replicas above the desired count while a new deployment rolls out. */
export const rollingDeploymentMaxSurge = 1;

/** Why a replica that is no longer wanted (scale-down or an old deployment) is stopped. */
export const scaledDownReason = 'scaled_down';

/** What a pass of the run pipeline changes in a run's jobs. */
export interface ReplicaChanges {
  /** New submissions: new replicas, or new submissions of replicas that ended. */
  inserts: JobRecord[];
  /** Patches of existing submissions, keyed by job id. */
  updates: Map<string, Partial<JobRecord>>;
}

/** The latest submission of each job of one replica. */
interface Replica {
  replicaNum: number;
  jobs: JobRecord[];
}

/** An active replica, ranked for scale-down as the original ranks it. */
interface RankedReplica extends Replica {
  importance: number;
  outOfDate: boolean;
}

/** Latest submissions grouped by replica, replica numbers ascending. */
export function replicasOfJobs(latest: readonly JobRecord[]): Replica[] {
  const byReplica = new Map<number, JobRecord[]>();

  for (const job of latest) {
    byReplica.set(job.replicaNum, [...(byReplica.get(job.replicaNum) ?? []), job]);
  }

  return [...byReplica.entries()]
    .sort(([a], [b]) => a - b)
    .map(([replicaNum, jobs]) => ({
      replicaNum,
      jobs: [...jobs].sort((a, b) => a.jobNum - b.jobNum),
    }));
}

/** The job specs a replica gets from the run's current spec. */
export function replicaJobSpecs(run: RunRecord, replicaNum: number): JobSpec[] {
  const spec = run.runSpec as RunSpec;
  return buildJobSpecs(spec, {
    runName: run.runName,
    replicaNum,
    requirements: runRequirements(spec),
  });
}

/** Stored JSON and freshly built specs compare alike once both went through JSON. */
function sameJobSpec(stored: unknown, built: JobSpec): boolean {
  return isDeepStrictEqual(JSON.parse(JSON.stringify(stored)), JSON.parse(JSON.stringify(built)));
}

/**
 * A replica takes traffic once its first job runs. The original also waits for probes;
 * TODO: readiness probes, once jobs run them, decide this instead.
 */
function isRegistered(replica: Replica): boolean {
  return replica.jobs[0]?.status === 'running';
}

function isOutOfDate(job: JobRecord, run: RunRecord): boolean {
  return job.deploymentNum < run.deploymentNum && !isJobFinished(job.status) &&
    job.terminationReason !== scaledDownReason;
}

/**
 * Replicas still on an older deployment that nothing has stopped yet. Jobs in `excluded`
 * count as up to date (they are about to be moved to the new deployment in place).
 */
function hasOutOfDateReplicas(
  run: RunRecord,
  replicas: readonly Replica[],
  excluded: ReadonlySet<string> = new Set(),
): boolean {
  return replicas.some((replica) =>
    replica.jobs.some((job) => !excluded.has(job.id) && isOutOfDate(job, run)));
}

/**
 * Active replicas ordered as the original keeps them: up to date first, then the most
 * advanced (running, provisioning, submitted), then by replica number; scale-down takes them
 * from the end. Replicas with a terminating or finished job are inactive.
 */
function rankReplicas(
  run: RunRecord,
  replicas: readonly Replica[],
): { active: RankedReplica[]; inactive: Replica[] } {
  const active: RankedReplica[] = [];
  const inactive: Replica[] = [];

  for (const replica of replicas) {
    const statuses = new Set(replica.jobs.map((job) => job.status));
    const outOfDate = replica.jobs[0]!.deploymentNum < run.deploymentNum;

    if (replica.jobs.some((job) => job.status === 'terminating' || isJobFinished(job.status))) {
      inactive.push(replica);
    } else if (statuses.has('submitted')) {
      active.push({ ...replica, importance: 0, outOfDate });
    } else if (statuses.has('provisioning') || statuses.has('pulling')) {
      active.push({ ...replica, importance: 1, outOfDate });
    } else {
      active.push({ ...replica, importance: isRegistered(replica) ? 3 : 2, outOfDate });
    }
  }

  active.sort((a, b) => Number(a.outOfDate) - Number(b.outOfDate) ||
    b.importance - a.importance || a.replicaNum - b.replicaNum);
  return { active, inactive };
}

/** Marks the last `count` active replicas to stop as scaled down. */
function scaleDown(changes: ReplicaChanges, active: readonly RankedReplica[], count: number): void {
  if (count <= 0) {
    return;
  }

  for (const replica of active.slice(-count).reverse()) {
    for (const job of replica.jobs) {
      if (!isJobFinished(job.status) && job.status !== 'terminating') {
        changes.updates.set(job.id, { status: 'terminating', terminationReason: scaledDownReason });
      }
    }
  }
}

/**
 * Adds `count` replicas of the current deployment: ended replicas get a new submission first,
 * then new replica numbers follow the highest one the run ever had.
 */
function scaleUp(
  changes: ReplicaChanges,
  run: RunRecord,
  inactive: readonly Replica[],
  allJobs: readonly JobRecord[],
  count: number,
  now: number,
): void {
  let added = 0;

  for (const replica of inactive) {
    if (added === count) {
      return;
    }

    const specs = replicaJobSpecs(run, replica.replicaNum);
    replica.jobs.forEach((old, index) => {
      const spec = specs[index];

      if (spec !== undefined) {
        changes.inserts.push(newJobRecord(run, spec, old.submissionNum + 1, now));
      }
    });
    added += 1;
  }

  const taken = [...allJobs, ...changes.inserts].map((job) => job.replicaNum);
  let next = Math.max(-1, ...taken) + 1;

  for (; added < count; added += 1, next += 1) {
    changes.inserts.push(
      ...replicaJobSpecs(run, next).map((spec) => newJobRecord(run, spec, 0, now)),
    );
  }
}

/**
 * Moves replicas of an older deployment to the current one without a restart when the
 * current spec gives them the same job specs (e.g. only `replicas` or `priority` changed).
 */
export function inPlaceDeploymentUpdates(
  run: RunRecord,
  latest: readonly JobRecord[],
): Map<string, Partial<JobRecord>> {
  const updates = new Map<string, Partial<JobRecord>>();
  const replicas = replicasOfJobs(latest);

  if (!hasOutOfDateReplicas(run, replicas)) {
    return updates;
  }

  for (const replica of replicas) {
    if (replica.jobs.every((job) => isJobFinished(job.status)) ||
      replica.jobs.every((job) => job.deploymentNum === run.deploymentNum)) {
      continue;
    }

    const specs = replicaJobSpecs(run, replica.replicaNum);
    const same = specs.length === replica.jobs.length &&
      replica.jobs.every((job, index) => sameJobSpec(job.jobSpec, specs[index]!));

    if (same) {
      replica.jobs.forEach((job) => updates.set(job.id, { deploymentNum: run.deploymentNum }));
    }
  }

  return updates;
}

/**
 * One pass over a service's replicas, as the original's run processing does it: move
 * unchanged replicas to the new deployment in place; with no replica out of date, scale to
 * the desired count (highest replica numbers stop first); otherwise roll: start replicas of
 * the new deployment up to the desired count plus the surge, and stop old ones as new ones
 * take traffic, so the service never has fewer serving replicas than it wants.
 */
export function serviceReplicaChanges(
  run: RunRecord,
  allJobs: readonly JobRecord[],
  latest: readonly JobRecord[],
  now: number,
  maxSurge: number = rollingDeploymentMaxSurge,
): ReplicaChanges {
  // TODO: `scaling` (autoscaling by request rate) would set the desired count between min
  // and max here, from a stored desired count; until then a range keeps its minimum.
  // TODO: replica groups scale and roll as one group until job specs carry their group.
  const desired = replicasOf(run.runSpec as RunSpec);
  const changes: ReplicaChanges = { inserts: [], updates: inPlaceDeploymentUpdates(run, latest) };
  const replicas = replicasOfJobs(latest);

  if (!hasOutOfDateReplicas(run, replicas)) {
    const { active, inactive } = rankReplicas(run, replicas);
    const diff = desired - active.length;

    if (diff > 0) {
      scaleUp(changes, run, inactive, allJobs, diff, now);
    } else {
      scaleDown(changes, active, -diff);
    }

    return changes;
  }

  const bumped = new Set(changes.updates.keys());

  if (!hasOutOfDateReplicas(run, replicas, bumped)) {
    return changes;
  }

  // Replicas about to move in place count as up to date from here on.
  const current = replicas.map((replica) => ({
    ...replica,
    jobs: replica.jobs.map((job) =>
      bumped.has(job.id) ? { ...job, deploymentNum: run.deploymentNum } : job),
  }));
  const { active, inactive } = rankReplicas(run, current);
  const nonTerminated = current.filter((r) => r.jobs.some((job) => !isJobFinished(job.status)));
  const ceiling = desired + maxSurge;

  if (nonTerminated.length < ceiling) {
    scaleUp(changes, run, inactive, allJobs, ceiling - nonTerminated.length, now);
  }

  const unregisteredOld = current.filter((replica) =>
    replica.jobs.some((job) => job.deploymentNum < run.deploymentNum) &&
    replica.jobs.some((job) => job.status !== 'terminating' && !isJobFinished(job.status)) &&
    !isRegistered(replica)).length;
  const registered = current.filter((replica) => isRegistered(replica) &&
    replica.jobs.every((job) => job.status !== 'terminating')).length;

  const room = changes.inserts.length === 0 ? makeRoom(active, current, maxSurge) : 0;
  scaleDown(changes, active, unregisteredOld + Math.max(0, registered - desired) + room);
  return changes;
}

/**
 * Without surge (replicas that share their host's ports), an old replica stops first and its
 * replacement starts once it has ended: one at a time, and only while every replica of the
 * new deployment already serves.
 */
function makeRoom(
  active: readonly RankedReplica[],
  current: readonly Replica[],
  maxSurge: number,
): number {
  const stopping = current.some((replica) =>
    replica.jobs.some((job) => job.status === 'terminating'));
  const startingNew = active.some((replica) => !replica.outOfDate && !isRegistered(replica));
  const old = active.some((replica) => replica.outOfDate);

  return maxSurge === 0 && old && !stopping && !startingNew ? 1 : 0;
}
