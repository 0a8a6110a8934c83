import type { FleetSpec } from '../domain/fleet.js';
import type { JobSpec } from '../domain/job.js';
import type { InstanceOffer, JobProvisioningData } from '../domain/resources.js';
import type { RunSpec } from '../domain/run.js';
import { isRunFinished } from '../domain/run.js';
import type { StateAccess } from '../ports/state-store.js';
import type { FleetRecord, InstanceRecord, JobRecord, RunRecord } from '../records.js';
import {
  fleetIdleSeconds,
  fleetNodes,
  freeInstanceNums,
  isSshFleet,
  jobInstanceIdleDefaultSeconds,
  newInstanceRecord,
} from '../services/fleet-records.js';
import { fleetBackendTypes } from '../services/fleets.js';
import { durationSeconds, runProfileParams } from '../services/jobs.js';
import {
  collectOffers,
  instanceFilterOf,
  instanceFits,
  instanceMatchesFilter,
  projectBackends,
} from '../services/offers.js';
import { candidateFleets } from '../services/runs.js';
import type { Claimed, PipelineDefinition } from './pipeline.js';
import { dueByStatus } from './pipeline.js';
import { nudge } from './nudge.js';
import type { SchedulerRuntime } from './runtime.js';
import { errorText } from './runtime.js';

type JobItem = Claimed<'jobs'>;

const noFleetMessage =
  'No fleet matches the run. Create a fleet (a `type: fleet` configuration) or name an ' +
  'existing one in `fleets`.';

function runtimeDataFor(offer: { instance: InstanceOffer['instance'] } | null): unknown {
  return {
    network_mode: 'host',
    gpu: null,
    cpu: null,
    memory: null,
    ports: null,
    volume_names: [],
    offer: offer ?? null,
    working_dir: null,
    username: null,
  };
}

async function failNoCapacity(item: JobItem, message: string): Promise<void> {
  await item.commit({
    status: 'terminating',
    terminationReason: 'failed_to_start_due_to_no_capacity',
    terminationReasonMessage: message,
  });
}

/** The master job (job 0 of the same replica, latest submission), when this job is not it. */
async function masterOf(rt: SchedulerRuntime, job: JobRecord): Promise<JobRecord | undefined> {
  const masters = await rt.ctx.store.find('jobs', {
    where: { runId: job.runId, replicaNum: job.replicaNum, jobNum: 0 },
    orderBy: [['submissionNum', 'desc']],
    limit: 1,
  });
  return masters[0];
}

/** Takes an idle instance that fits, cheapest first; returns whether the job got one. */
async function assignPoolInstance(
  rt: SchedulerRuntime,
  item: JobItem,
  run: RunRecord,
  fleets: readonly FleetRecord[],
  master: JobRecord | undefined,
): Promise<boolean> {
  const job = item.row;
  const spec = job.jobSpec as JobSpec;
  const candidates: { instance: InstanceRecord; fleet: FleetRecord }[] = [];
  const masterData = master?.provisioningData as JobProvisioningData | null | undefined;
  const filter = instanceFilterOf(runProfileParams(run.runSpec as RunSpec));

  for (const fleet of fleets) {
    const instances = await rt.ctx.store.find('instances', {
      // Busy instances only take another job when they are split into blocks.
      where: {
        fleetId: fleet.id,
        deleted: false,
        $or: [{ status: 'idle' }, { status: 'busy', totalBlocks: { gt: 1 } }],
      },
    });

    for (const instance of instances) {
      if (!instanceFits(instance, spec.requirements) || instance.lockToken !== null) {
        continue;
      }

      if (masterData && instance.backend !== masterData.backend) {
        continue;
      }

      if (!instanceMatchesFilter(instance, fleet.name, filter)) {
        continue;
      }

      candidates.push({ instance, fleet });
    }
  }

  candidates.sort((a, b) => (a.instance.price ?? 0) - (b.instance.price ?? 0));

  for (const { instance, fleet } of candidates) {
    const assigned = await rt.ctx.store.transaction(async (tx) => {
      const taken = await tx.update(
        'instances',
        {
          id: instance.id,
          status: instance.status,
          busyBlocks: instance.busyBlocks,
          lockToken: null,
          deleted: false,
        },
        { status: 'busy', busyBlocks: instance.busyBlocks + 1 },
      );

      if (taken === 0) {
        return false;
      }

      await commitAssignment(tx, item, run, fleet, {
        instanceId: instance.id,
        provisioningData: instance.provisioningData,
        offer: instance.offer as InstanceOffer | null,
      });

      return true;
    }).catch((error: unknown) => {
      if (error instanceof LeaseLostError) {
        return 'lost' as const;
      }

      throw error;
    });

    if (assigned === 'lost') {
      return true;
    }

    if (assigned) {
      rt.ctx.logger.info({ runName: job.runName, jobId: job.id, instance: instance.name },
        'job assigned to an idle instance');
      return true;
    }
  }

  return false;
}

class LeaseLostError extends Error {}

/**
 * Within `tx`, puts the job on the instance as provisioning and the run on `fleet` when it
 * has none yet. A lost lease throws LeaseLostError, so that the transaction rolls back.
 */
async function commitAssignment(
  tx: StateAccess,
  item: JobItem,
  run: RunRecord,
  fleet: FleetRecord,
  assignment: {
    instanceId: string;
    provisioningData: unknown;
    offer: { instance: InstanceOffer['instance'] } | null;
  },
): Promise<void> {
  const committed = await item.commit(
    {
      status: 'provisioning',
      fleetId: fleet.id,
      instanceId: assignment.instanceId,
      usedInstanceId: assignment.instanceId,
      instanceAssigned: true,
      provisioningData: assignment.provisioningData,
      runtimeData: runtimeDataFor(assignment.offer),
      waitingMasterJob: false,
    },
    tx,
  );

  if (!committed) {
    throw new LeaseLostError();
  }

  if (run.fleetId === null) {
    await tx.update('runs', { id: run.id, fleetId: null }, { fleetId: fleet.id });
  }
}

/**
 * The lowest instance number free in the fleet. When numbers are dense (the usual case) it
 * is the count, found without reading every instance of a large fleet.
 */
async function nextInstanceNum(rt: SchedulerRuntime, fleetId: string): Promise<number> {
  const where = { fleetId, deleted: false };
  const count = await rt.ctx.store.count('instances', where);
  const top = await rt.ctx.store.findOne('instances', {
    where,
    orderBy: [['instanceNum', 'desc']],
  });

  if (top === undefined || top.instanceNum === count - 1) {
    return count;
  }

  const existing = await rt.ctx.store.find('instances', { where });
  return freeInstanceNums(existing, 1)[0]!;
}

interface FleetOffer {
  fleet: FleetRecord;
  offer: InstanceOffer;
}

/** New capacity: offers of every fleet that may still grow, cheapest first. */
async function fleetOffers(
  rt: SchedulerRuntime,
  run: RunRecord,
  job: JobRecord,
  fleets: readonly FleetRecord[],
  master: JobRecord | undefined,
): Promise<{ offers: FleetOffer[]; reasons: string[] }> {
  const { ctx } = rt;
  const spec = job.jobSpec as JobSpec;
  const runSpec = run.runSpec as RunSpec;
  const filter = instanceFilterOf(runProfileParams(runSpec));
  const profileBackends = filter.backends;
  const masterData = master?.provisioningData as JobProvisioningData | null | undefined;
  const project = await ctx.store.get('projects', run.projectId);
  const offers: FleetOffer[] = [];
  const reasons: string[] = [];

  if (project === undefined) {
    return { offers, reasons: ['the project is gone'] };
  }

  if (filter.instances !== null) {
    return { offers, reasons: ['no selected instance is idle and fits'] };
  }

  for (const fleet of fleets) {
    const fleetSpec = fleet.spec as FleetSpec;
    const nodes = fleetNodes(fleetSpec);

    if (isSshFleet(fleetSpec) || nodes === null) {
      reasons.push(`fleet ${fleet.name} has no idle host that fits`);
      continue;
    }

    const active = nodes.max === null ? 0 : await ctx.store.count('instances', {
      fleetId: fleet.id,
      deleted: false,
      status: { notIn: ['terminating', 'terminated'] },
    });

    if (nodes.max !== null && active >= nodes.max) {
      reasons.push(`fleet ${fleet.name} is at its maximum of ${nodes.max} instances`);
      continue;
    }

    let types = fleetBackendTypes(fleetSpec);

    if (profileBackends !== null) {
      types = (types ?? profileBackends).filter((type) => profileBackends.includes(type));
    }

    if (masterData) {
      types = (types ?? [masterData.backend]).filter((type) => type === masterData.backend);
    }

    // An empty filter would mean "any backend" to projectBackends: here it means none.
    const backends = types !== null && types.length === 0
      ? []
      : await projectBackends(ctx, project, types);

    if (backends.length === 0) {
      reasons.push(`fleet ${fleet.name} has no backend the run may use`);
      continue;
    }

    const found = await collectOffers(backends, spec.requirements, ctx.logger);
    reasons.push(...found.errors);

    if (found.offers.length === 0) {
      reasons.push(`no offers of fleet ${fleet.name} meet the requirements`);
    }

    offers.push(...found.offers.map((offer) => ({ fleet, offer })));
  }

  offers.sort((a, b) => a.offer.price - b.offer.price);
  return { offers, reasons };
}

/** Creates an instance for an offer and moves the job onto it; returns the failure, if any. */
async function provisionOffer(
  rt: SchedulerRuntime,
  item: JobItem,
  run: RunRecord,
  choice: FleetOffer,
): Promise<string | null> {
  const { ctx } = rt;
  const job = item.row;
  const { fleet, offer } = choice;
  const project = await ctx.store.get('projects', run.projectId);
  const backend = project && (await projectBackends(ctx, project, [offer.backend]))[0];

  if (backend === undefined || project === undefined) {
    return `backend ${offer.backend} is not configured`;
  }

  const fleetSpec = fleet.spec as FleetSpec;
  const runProfile = runProfileParams(run.runSpec as RunSpec);
  const runIdle = runProfile.idle_duration;
  const idleSeconds = runIdle === null || runIdle === undefined
    ? fleetIdleSeconds(fleetSpec, jobInstanceIdleDefaultSeconds)
    : runIdle === 'off' || runIdle === false ? -1 : (durationSeconds(runIdle) ?? 300);

  return ctx.store.withLock(`fleet_instances_${fleet.id}`, async () => {
    const nodes = fleetNodes(fleetSpec);
    const limited = nodes !== null && nodes.max !== null;
    const active = !limited ? 0 : await ctx.store.count('instances', {
      fleetId: fleet.id,
      deleted: false,
      status: { notIn: ['terminating', 'terminated'] },
    });

    if (limited && active >= nodes.max!) {
      return `fleet ${fleet.name} is at its maximum of ${nodes.max} instances`;
    }

    if (!(await item.held())) {
      return null;
    }

    const instanceNum = await nextInstanceNum(rt, fleet.id);
    const instance = newInstanceRecord({
      projectId: project.id,
      fleetId: fleet.id,
      fleetName: fleet.name,
      instanceNum,
      now: ctx.now(),
      status: 'provisioning',
      backend: offer.backend,
      idleSeconds,
      profile: { requirements: (job.jobSpec as JobSpec).requirements },
    });
    let data: JobProvisioningData;

    try {
      data = await backend.provider.createInstance({
        ...backend.settings,
        offer,
        instanceName: instance.name,
        instanceId: instance.id,
      });
    } catch (error) {
      ctx.logger.warn({ runName: job.runName, backend: offer.backend, err: errorText(error) },
        'instance creation failed');
      return errorText(error).slice(0, 200);
    }

    const now = ctx.now();
    const committed = await ctx.store.transaction(async (tx) => {
      await tx.insert('instances', {
        ...instance,
        startedAt: now,
        region: offer.region,
        availabilityZone: data.availability_zone,
        price: offer.price,
        instanceType: offer.instance,
        offer,
        provisioningData: data,
        totalBlocks: offer.total_blocks,
        busyBlocks: offer.blocks,
      });

      await commitAssignment(tx, item, run, fleet, {
        instanceId: instance.id,
        provisioningData: data,
        offer,
      });

      return true;
    }).catch((error: unknown) => {
      if (error instanceof LeaseLostError) {
        return false;
      }

      throw error;
    });

    if (!committed) {
      // Another worker owns the job now: the instance made here would be orphaned.
      await backend.provider
        .terminateInstance({ ...backend.settings, provisioningData: data })
        .catch(() => undefined);
      return null;
    }

    ctx.logger.info({ runName: job.runName, jobId: job.id, instance: instance.name },
      'instance created for job');
    return null;
  });
}

/** Handles a submitted job: an idle instance of a matching fleet, else a new offer. */
async function processSubmittedJob(rt: SchedulerRuntime, item: JobItem): Promise<void> {
  const { ctx } = rt;
  const job = item.row;
  const run = await ctx.store.get('runs', job.runId);

  if (run === undefined || isRunFinished(run.status) || run.status === 'terminating') {
    return;
  }

  const master = job.jobNum > 0 ? await masterOf(rt, job) : undefined;

  if (job.jobNum > 0) {
    const ready = master !== undefined && master.provisioningData !== null && run.fleetId !== null;

    if (!ready) {
      return;
    }
  }

  let fleets = await candidateFleets(ctx.store, run.projectId, run.runSpec as RunSpec);

  if (run.fleetId !== null) {
    fleets = fleets.filter((fleet) => fleet.id === run.fleetId);
  }

  if ((job.jobSpec as JobSpec).jobs_per_replica > 1) {
    fleets = fleets.filter((f) => (f.spec as FleetSpec).configuration.placement === 'cluster');
  }

  if (fleets.length === 0) {
    await failNoCapacity(item, noFleetMessage);
    return;
  }

  if (await assignPoolInstance(rt, item, run, fleets, master)) {
    await nudge(ctx.store, 'runs', run.id);
    ctx.hint?.('jobs');
    ctx.hint?.('runs');
    return;
  }

  const { offers, reasons } = await fleetOffers(rt, run, job, fleets, master);
  const errors: string[] = [];

  for (const choice of offers.slice(0, rt.options.maxOffersTried)) {
    const failure = await provisionOffer(rt, item, run, choice);

    if (failure === null) {
      await nudge(ctx.store, 'runs', run.id);
      ctx.hint?.('jobs');
      ctx.hint?.('runs');
      return;
    }

    errors.push(failure);
  }

  const distinct = [...new Set([...errors, ...reasons])].slice(0, 3);
  const message = distinct.length === 0
    ? 'No offers meet the requirements'
    : `No offers meet the requirements: ${distinct.join('; ')}`;

  ctx.logger.info({ runName: job.runName, jobId: job.id, message }, 'job has no capacity');
  await failNoCapacity(item, message);
}

/** The pipeline of submitted jobs, highest run priority first. */
export function jobSubmittedPipeline(rt: SchedulerRuntime): PipelineDefinition<'jobs'> {
  return {
    name: 'JobSubmittedPipeline',
    table: 'jobs',
    due: (now) => dueByStatus(now, [[['submitted'], rt.options.intervals.jobsSubmitted]]),
    process: (item) => processSubmittedJob(rt, item),
  };
}
