import { isDeepStrictEqual } from 'node:util';
import type { CoreContext } from '../context.js';
import type { JobSpec } from '../domain/job.js';
import type { InstanceOffer, Requirements } from '../domain/resources.js';
import type { JobPlan, Run, RunPlan, RunSpec } from '../domain/run.js';
import { nextScheduledTime } from '../domain/cron-schedule.js';
import { isRunFinished, runSchedule, runToWire } from '../domain/run.js';
import {
  RepoDoesNotExistError,
  ResourceNotExistsError,
  ServerClientError,
} from '../errors/server-errors.js';
import type { StateAccess } from '../ports/state-store.js';
import type { FleetRecord, JobRecord, ProjectRecord, RunRecord, UserRecord } from '../records.js';
import { newId } from '../util/ids.js';
import type { FleetSpec } from '../domain/fleet.js';
import { eventTarget, recordEvent } from './events.js';
import { fleetBackendTypes, fleetRequirements } from './fleets.js';
import { buildJobSpecs, runProfileParams, replicasOf } from './jobs.js';
import {
  collectOffers,
  instanceAsOffer,
  instanceFilterOf,
  instanceFits,
  instanceMatchesFilter,
  projectBackends,
} from './offers.js';
import { nextRunName, randomRunNameStem, resourceNamePattern } from './run-names.js';
import { normalizeRunSpec, runRequirements } from './run-spec.js';
import { canUpdateRunSpec, checkCanUpdateRunSpec } from './run-update.js';

/** Who acts on runs: the project and the user, already checked by the route guard. */
export interface RunActor {
  project: ProjectRecord;
  user: UserRecord;
}

/** At most this many offers are listed per job in a plan by default. */
const defaultMaxOffers = 50;

function checkRunName(name: string | null | undefined): void {
  if (name !== null && name !== undefined && !resourceNamePattern.test(name)) {
    throw new ServerClientError(
      'Resource name should match regex \'^[a-z][a-z0-9-]{1,40}$\'',
      'error',
      [['run_spec', 'run_name']],
    );
  }
}

async function resolveRepo(
  ctx: CoreContext,
  actor: RunActor,
  spec: RunSpec,
): Promise<{ spec: RunSpec; repoRowId: string | null }> {
  const repoId = spec.repo_id as string | null | undefined;
  const repoData = spec.repo_data as { repo_type?: string } | null | undefined;
  const hasId = repoId !== null && repoId !== undefined;
  const hasData = repoData !== null && repoData !== undefined;

  if (hasId !== hasData) {
    throw new ServerClientError('repo_id and repo_data must be set together');
  }

  if (!hasId) {
    const virtual = { ...spec, repo_id: 'none', repo_data: { repo_type: 'virtual' } };
    return { spec: virtual, repoRowId: null };
  }

  if (repoData?.repo_type === 'virtual') {
    return { spec, repoRowId: null };
  }

  const repo = await ctx.store.findOne('repos', {
    where: { projectId: actor.project.id, name: repoId },
  });

  if (repo === undefined) {
    throw new RepoDoesNotExistError(repoId);
  }

  return { spec, repoRowId: repo.id };
}

/** Every backend the run could use can run container images; say so early when not. */
async function checkImageSupport(ctx: CoreContext, actor: RunActor, spec: RunSpec): Promise<void> {
  if (typeof spec.configuration.image !== 'string') {
    return;
  }

  const backends = await projectBackends(ctx, actor.project);

  if (backends.length > 0 && !backends.some((backend) => backend.provider.capabilities.images)) {
    const types = [...new Set(backends.map((backend) => backend.record.type))].join(', ');
    throw new ServerClientError(
      `The project's backends (${types}) run no container images: the local backend runs ` +
        'commands directly on this machine. Remove `image` from the configuration.',
      'error',
      [['configuration', 'image']],
    );
  }
}

/** The fleets a run may use: the profile's `fleets` list, or every active fleet. */
export async function candidateFleets(
  access: StateAccess,
  projectId: string,
  spec: RunSpec,
): Promise<FleetRecord[]> {
  const fleets = await access.find('fleets', {
    where: { projectId, deleted: false, status: 'active' },
    orderBy: [['createdAt', 'asc']],
  });
  const names = (runProfileParams(spec).fleets as unknown[] | null | undefined) ?? null;

  if (names === null || names.length === 0) {
    return fleets;
  }

  const wanted = new Set(
    names.map((ref) =>
      typeof ref === 'string' ? ref.split('/').pop()! : String((ref as { name: string }).name),
    ),
  );

  return fleets.filter((fleet) => wanted.has(fleet.name));
}

/** Offers for one job: idle instances of the fleets first, then new capacity, cheapest first. */
async function planOffers(
  ctx: CoreContext,
  actor: RunActor,
  spec: RunSpec,
  requirements: Requirements,
): Promise<InstanceOffer[]> {
  const fleets = await candidateFleets(ctx.store, actor.project.id, spec);
  const pool: InstanceOffer[] = [];
  const filter = instanceFilterOf(runProfileParams(spec));
  const profileBackends = filter.backends;
  const types = new Set<string>();
  let anyBackend = false;

  for (const fleet of fleets) {
    const fleetSpec = fleet.spec as FleetSpec;
    const instances = await ctx.store.find('instances', {
      where: { fleetId: fleet.id, deleted: false },
    });

    for (const instance of instances) {
      if (instanceFits(instance, requirements) &&
        instanceMatchesFilter(instance, fleet.name, filter)) {
        pool.push(instanceAsOffer(instance));
      }
    }

    if (requirements.multinode === true && fleetSpec.configuration.placement !== 'cluster') {
      continue;
    }

    const fleetTypes = fleetBackendTypes(fleetSpec);

    if (fleetSpec.configuration.ssh_config) {
      continue;
    }

    if (fleetTypes === null) {
      anyBackend = true;
    } else {
      fleetTypes.forEach((type) => types.add(type));
    }
  }

  const allowed = anyBackend ? null : [...types];
  const narrowed = profileBackends === null
    ? allowed
    : (allowed ?? profileBackends).filter((type) => profileBackends.includes(type));
  // Selected instances name existing ones: a run that picks instances gets no new capacity.
  const noNew = fleets.length === 0 || filter.instances !== null ||
    (narrowed !== null && narrowed.length === 0);
  const backends = noNew
    ? []
    : await projectBackends(ctx, actor.project, narrowed);
  const fresh = (await collectOffers(backends, requirements, ctx.logger)).offers;

  pool.sort((a, b) => a.price - b.price);
  return [...pool, ...fresh];
}

async function loadRunWire(
  access: StateAccess,
  run: RunRecord,
  options: { projectName: string; now: number; includeJobs?: boolean; submissionsLimit?: number },
): Promise<Run> {
  const jobs = await access.find('jobs', { where: { runId: run.id } });
  const user = await access.get('users', run.userId);
  const fleet = run.fleetId === null ? undefined : await access.get('fleets', run.fleetId);

  return runToWire(run, jobs, {
    projectName: options.projectName,
    userName: user?.name ?? '',
    fleet: fleet === undefined ? null : { id: fleet.id, name: fleet.name },
    includeJobs: options.includeJobs ?? true,
    submissionsLimit: options.submissionsLimit ?? 10,
    now: options.now,
  });
}

async function activeRunByName(
  access: StateAccess,
  projectId: string,
  runName: string,
): Promise<RunRecord | undefined> {
  const runs = await access.find('runs', { where: { projectId, runName, deleted: false } });
  return runs.find((run) => !isRunFinished(run.status));
}

/** Options of `runs/get_plan`. */
export interface GetPlanOptions {
  maxOffers?: number | null;
}

/** Plans a run: the normalised spec, one job plan per job with its offers, create or update. */
export async function getRunPlan(
  ctx: CoreContext,
  actor: RunActor,
  input: unknown,
  options: GetPlanOptions = {},
): Promise<RunPlan> {
  const submitted = normalizeRunSpec(input, actor.user);
  checkRunName(submitted.run_name);

  const { spec: effective } = await resolveRepo(ctx, actor, submitted);
  await checkImageSupport(ctx, actor, effective);

  const current = submitted.run_name
    ? await activeRunByName(ctx.store, actor.project.id, submitted.run_name)
    : undefined;
  const runName = submitted.run_name ?? 'plan';
  const maxOffers = options.maxOffers ?? defaultMaxOffers;
  const jobPlans: JobPlan[] = [];

  for (let replica = 0; replica < Math.max(1, replicasOf(effective)); replica += 1) {
    const specs = buildJobSpecs(effective, {
      runName,
      replicaNum: replica,
      requirements: runRequirements(effective),
    });

    for (const jobSpec of specs) {
      const offers = await planOffers(ctx, actor, effective, jobSpec.requirements);
      const shown = offers.slice(0, maxOffers);
      jobPlans.push({
        job_spec: jobSpec,
        offers: shown,
        total_offers: offers.length,
        max_price: shown.length === 0 ? null : Math.max(...shown.map((offer) => offer.price)),
      });
    }
  }

  return {
    project_name: actor.project.name,
    user: actor.user.name,
    run_spec: input as RunSpec,
    effective_run_spec: effective,
    job_plans: jobPlans,
    current_resource: current === undefined
      ? null
      : await loadRunWire(ctx.store, current, { projectName: actor.project.name, now: ctx.now() }),
    // As the original: `update` only when apply can change the active run in place.
    action: current !== undefined && canUpdateRunSpec(current.runSpec as RunSpec, effective)
      ? 'update'
      : 'create',
  };
}

/** A submitted job row for a job spec of a run. */
export function newJobRecord(
  run: RunRecord,
  jobSpec: JobSpec,
  submissionNum: number,
  now: number,
): JobRecord {
  return {
    id: newId(),
    projectId: run.projectId,
    runId: run.id,
    fleetId: run.fleetId,
    runName: run.runName,
    jobNum: jobSpec.job_num,
    jobName: jobSpec.job_name,
    replicaNum: jobSpec.replica_num,
    submissionNum,
    deploymentNum: run.deploymentNum,
    submittedAt: now,
    lastProcessedAt: now,
    finishedAt: null,
    status: 'submitted',
    statusMessage: null,
    terminationReason: null,
    terminationReasonMessage: null,
    exitStatus: null,
    jobSpec,
    provisioningData: null,
    runtimeData: null,
    runnerTimestamp: null,
    disconnectedAt: null,
    instanceId: null,
    usedInstanceId: null,
    instanceAssigned: false,
    gracefulTerminationAttempts: null,
    removeAt: null,
    waitingMasterJob: jobSpec.job_num > 0,
    lockToken: null,
    lockOwner: null,
    lockExpiresAt: null,
  };
}

/** The job specs of every replica of a run. */
export function runJobSpecs(spec: RunSpec, runName: string): JobSpec[] {
  const requirements = runRequirements(spec);
  const specs: JobSpec[] = [];

  for (let replica = 0; replica < Math.max(1, replicasOf(spec)); replica += 1) {
    specs.push(...buildJobSpecs(spec, { runName, replicaNum: replica, requirements }));
  }

  return specs;
}

/**
 * Applies a changed spec to an active run, as the original: the spec is stored, the
 * deployment number goes up by one and the run pipeline brings the jobs to it (in place when
 * their job specs stay the same, by a rolling deployment of services otherwise).
 */
async function updateRunInPlace(
  ctx: CoreContext,
  tx: StateAccess,
  actor: RunActor,
  current: RunRecord,
  spec: RunSpec,
  request: ApplyRunRequest,
): Promise<RunRecord> {
  const currentSpec = current.runSpec as RunSpec;
  let changed: string[];

  try {
    changed = checkCanUpdateRunSpec(currentSpec, spec);
  } catch (error) {
    if (error instanceof ServerClientError) {
      ctx.logger.debug({ runName: current.runName, reason: error.message },
        'run cannot be updated in place');
      throw new ServerClientError('Cannot override active run. Stop the run first.');
    }

    throw error;
  }

  if (!request.force) {
    const expected = request.currentResource;

    if (expected === null || expected.id !== current.id ||
      !isDeepStrictEqual(expected.run_spec, currentSpec)) {
      throw new ServerClientError(
        'Failed to apply plan. Resource has been changed. Try again or use force apply.',
      );
    }
  }

  const deploymentNum = current.deploymentNum + 1;
  const patch = {
    runSpec: { ...spec, run_name: current.runName },
    priority: Number(spec.configuration.priority ?? 0),
    deploymentNum,
    // Due at once: the run pipeline brings the jobs to the new deployment.
    lockOwner: null,
  };

  await tx.update('runs', { id: current.id }, patch);
  await recordEvent(
    ctx,
    tx,
    `Run updated. Deployment: ${deploymentNum}. Changed fields: ${changed.join(', ')}`,
    actor.user,
    [eventTarget.run(current)],
  );
  return { ...current, ...patch };
}

/** The body of `runs/apply`. */
export interface ApplyRunRequest {
  runSpec: unknown;
  currentResource: Run | null;
  force: boolean;
}

/**
 * Creates a run with its jobs in one transaction, or updates the active run of that name in
 * place when its spec allows. A new run needs no fleet here: the scheduler reports a missing
 * one.
 */
export async function applyRunPlan(
  ctx: CoreContext,
  actor: RunActor,
  request: ApplyRunRequest,
): Promise<Run> {
  const submitted = normalizeRunSpec(request.runSpec, actor.user);
  checkRunName(submitted.run_name);

  const { spec, repoRowId } = await resolveRepo(ctx, actor, submitted);
  await checkImageSupport(ctx, actor, spec);

  const project = actor.project;
  let updated = false;
  const run = await ctx.store.withLock(`run_names_${project.id}`, () =>
    ctx.store.transaction(async (tx) => {
      updated = false;
      const now = ctx.now();
      const current = spec.run_name
        ? await activeRunByName(tx, project.id, spec.run_name)
        : undefined;

      if (current !== undefined) {
        updated = true;
        return updateRunInPlace(ctx, tx, actor, current, spec, request);
      }

      let runName = spec.run_name;

      if (runName === null || runName === undefined) {
        const taken = await tx.find('runs', { where: { projectId: project.id } });
        runName = nextRunName(randomRunNameStem(), new Set(taken.map((r) => r.runName)));
      }

      const storedSpec: RunSpec = { ...spec, run_name: runName };
      const schedule = runSchedule(storedSpec);
      // A scheduled run waits without jobs; the run pipeline submits them when it is due.
      const status = schedule === null ? 'submitted' : 'pending';
      const record: RunRecord = {
        id: newId(),
        projectId: project.id,
        userId: actor.user.id,
        repoId: repoRowId,
        fleetId: null,
        runName,
        submittedAt: now,
        lastProcessedAt: now,
        status,
        statusMessage: status,
        terminationReason: null,
        resubmissionAttempt: 0,
        runSpec: storedSpec,
        serviceSpec: null,
        priority: Number(spec.configuration.priority ?? 0),
        deploymentNum: 0,
        deleted: false,
        nextTriggeredAt: schedule === null ? null : nextScheduledTime(schedule, now),
        lockToken: null,
        lockOwner: null,
        lockExpiresAt: null,
      };

      await tx.insert('runs', record);

      if (schedule === null) {
        await tx.insert(
          'jobs',
          runJobSpecs(storedSpec, runName).map((job) => newJobRecord(record, job, 0, now)),
        );
      }

      await recordEvent(ctx, tx, 'Run submitted', actor.user, [eventTarget.run(record)]);
      return record;
    }),
  );

  ctx.hint?.('jobs');
  ctx.hint?.('runs');

  if (updated) {
    ctx.logger.info(
      { runName: run.runName, projectName: project.name, deploymentNum: run.deploymentNum },
      'run updated',
    );
  } else if (run.nextTriggeredAt === null) {
    ctx.logger.info({ runName: run.runName, projectName: project.name }, 'run submitted');
  } else {
    ctx.logger.info(
      { runName: run.runName, projectName: project.name, nextTriggeredAt: run.nextTriggeredAt },
      'run scheduled',
    );
  }

  return loadRunWire(ctx.store, run, { projectName: project.name, now: ctx.now() });
}

/** One run by id (deleted ones too) or by name (non-deleted only, the newest). */
export async function getRun(
  ctx: CoreContext,
  project: ProjectRecord,
  query: { runName?: string | null; id?: string | null },
): Promise<Run> {
  let run: RunRecord | undefined;

  if (query.id !== null && query.id !== undefined) {
    run = await ctx.store.findOne('runs', { where: { id: query.id, projectId: project.id } });
  } else if (query.runName !== null && query.runName !== undefined) {
    run = await ctx.store.findOne('runs', {
      where: { projectId: project.id, runName: query.runName, deleted: false },
      orderBy: [['submittedAt', 'desc']],
    });
  } else {
    throw new ServerClientError('run_name or id must be specified');
  }

  if (run === undefined) {
    throw new ResourceNotExistsError('Run not found');
  }

  return loadRunWire(ctx.store, run, { projectName: project.name, now: ctx.now() });
}

/** The filters of the global `runs/list`, already resolved to ids. */
export interface ListRunsRequest {
  projectIds: readonly string[];
  /** Repo row filter: an id, or 'virtual' for runs without a repo row. */
  repoRowId?: string | null;
  userId?: string | null;
  onlyActive: boolean;
  includeJobs: boolean;
  submissionsLimit: number;
  prevSubmittedAt: number | null;
  prevRunId: string | null;
  limit: number;
  ascending: boolean;
}

const activeRunStatuses = ['pending', 'submitted', 'provisioning', 'running', 'terminating'];

/** Runs with keyset pagination on (submitted_at, id), deleted runs included. */
export async function listRuns(ctx: CoreContext, request: ListRunsRequest): Promise<Run[]> {
  if (request.projectIds.length === 0 || request.limit === 0) {
    return [];
  }

  const where: Record<string, unknown> = { projectId: { in: request.projectIds } };

  if (request.repoRowId !== undefined) {
    where.repoId = request.repoRowId;
  }

  if (request.userId !== null && request.userId !== undefined) {
    where.userId = request.userId;
  }

  if (request.onlyActive) {
    where.status = { in: activeRunStatuses };
  }

  if (request.prevSubmittedAt !== null) {
    const or: Record<string, unknown>[] = [
      { submittedAt: { [request.ascending ? 'gt' : 'lt']: request.prevSubmittedAt } },
    ];

    if (request.prevRunId !== null) {
      or.push({
        submittedAt: request.prevSubmittedAt,
        id: { [request.ascending ? 'lt' : 'gt']: request.prevRunId },
      });
    }

    where.$or = or;
  }

  const runs = await ctx.store.find('runs', {
    where: where as never,
    orderBy: request.ascending
      ? [['submittedAt', 'asc'], ['id', 'desc']]
      : [['submittedAt', 'desc'], ['id', 'asc']],
    limit: request.limit,
  });
  return runsToWire(ctx, runs, request);
}

/** Serializes a page of runs with one query for all their jobs. */
async function runsToWire(
  ctx: CoreContext,
  runs: readonly RunRecord[],
  request: { includeJobs: boolean; submissionsLimit: number },
): Promise<Run[]> {
  const now = ctx.now();
  const jobs = runs.length === 0
    ? []
    : await ctx.store.find('jobs', { where: { runId: { in: runs.map((run) => run.id) } } });
  const jobsByRun = new Map<string, JobRecord[]>();
  const names = new Map<string, string>();
  const fleets = new Map<string, { id: string; name: string } | null>();

  for (const job of jobs) {
    jobsByRun.set(job.runId, [...(jobsByRun.get(job.runId) ?? []), job]);
  }

  const nameOf = async (table: 'projects' | 'users', id: string): Promise<string> => {
    const key = `${table}:${id}`;

    if (!names.has(key)) {
      names.set(key, (await ctx.store.get(table, id))?.name ?? '');
    }

    return names.get(key)!;
  };

  const result: Run[] = [];

  for (const run of runs) {
    if (run.fleetId !== null && !fleets.has(run.fleetId)) {
      const fleet = await ctx.store.get('fleets', run.fleetId);
      fleets.set(run.fleetId, fleet === undefined ? null : { id: fleet.id, name: fleet.name });
    }

    result.push(runToWire(run, jobsByRun.get(run.id) ?? [], {
      projectName: await nameOf('projects', run.projectId),
      userName: await nameOf('users', run.userId),
      fleet: run.fleetId === null ? null : (fleets.get(run.fleetId) ?? null),
      includeJobs: request.includeJobs,
      submissionsLimit: request.submissionsLimit,
      now,
    }));
  }

  return result;
}

/**
 * Asks runs to stop (or abort): each unfinished run becomes `terminating` with the reason;
 * the run pipeline then stops its jobs. Finished and unknown runs are ignored.
 */
export async function stopRuns(
  ctx: CoreContext,
  project: ProjectRecord,
  runNames: readonly string[],
  abort: boolean,
  actor: Pick<UserRecord, 'id'> | null = null,
): Promise<void> {
  await ctx.store.transaction(async (tx) => {
    const now = ctx.now();

    for (const runName of runNames) {
      const run = await activeRunByName(tx, project.id, runName);

      if (run === undefined || (run.status === 'terminating' && !abort)) {
        continue;
      }

      await tx.update(
        'runs',
        { id: run.id },
        { status: 'terminating', terminationReason: abort ? 'aborted_by_user' : 'stopped_by_user' },
      );
      await recordEvent(ctx, tx, abort ? 'Run aborted' : 'Run stopped', actor,
        [eventTarget.run(run)]);
    }
  });

  ctx.hint?.('runs');
}

/** Soft-deletes finished runs; an active one refuses the whole request. */
export async function deleteRuns(
  ctx: CoreContext,
  project: ProjectRecord,
  runNames: readonly string[],
  actor: Pick<UserRecord, 'id'> | null = null,
): Promise<void> {
  await ctx.store.transaction(async (tx) => {
    const runs = await tx.find('runs', {
      where: { projectId: project.id, runName: { in: runNames }, deleted: false },
    });
    const active = runs.filter((run) => !isRunFinished(run.status));

    if (active.length > 0) {
      throw new ServerClientError(
        `Cannot delete active runs: [${active.map((run) => `'${run.runName}'`).join(', ')}]`,
      );
    }

    for (const run of runs) {
      await tx.update('runs', { id: run.id }, { deleted: true });
      await recordEvent(ctx, tx, 'Run deleted', actor, [eventTarget.run(run)]);
    }
  });
}
