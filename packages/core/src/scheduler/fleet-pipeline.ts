import type { FleetSpec } from '../domain/fleet.js';
import { isRunFinished } from '../domain/run.js';
import { fleetNodes, isSshFleet } from '../services/fleet-records.js';
import { createMinInstances } from '../services/fleets.js';
import type { Claimed, PipelineDefinition } from './pipeline.js';
import { dueByStatus } from './pipeline.js';
import type { SchedulerRuntime } from './runtime.js';

type FleetItem = Claimed<'fleets'>;

async function inUse(rt: SchedulerRuntime, fleetId: string): Promise<boolean> {
  const runs = await rt.ctx.store.find('runs', { where: { fleetId, deleted: false } });
  return runs.some((run) => !isRunFinished(run.status));
}

/** Instances of the fleet not yet gone, and of those the ones not on their way out. */
async function countInstances(
  rt: SchedulerRuntime,
  fleetId: string,
): Promise<{ live: number; active: number }> {
  const { store } = rt.ctx;
  // Counts, not rows: a pass over a fleet of thousands of instances stays an index lookup.
  const live = await store.count('instances', {
    fleetId, deleted: false, status: { ne: 'terminated' },
  });
  const active = live === 0 ? 0 : await store.count('instances', {
    fleetId, deleted: false, status: { notIn: ['terminated', 'terminating'] },
  });

  return { live, active };
}

/**
 * A terminating fleet is removed once its instances are gone, an empty SSH fleet too; an
 * active cloud fleet gets new instances whenever it drops below `nodes.min`.
 */
async function processFleet(rt: SchedulerRuntime, item: FleetItem): Promise<void> {
  const { ctx } = rt;
  const fleet = item.row;
  const { live, active } = await countInstances(rt, fleet.id);

  if (fleet.status === 'terminating') {
    if (live === 0) {
      const now = ctx.now();

      if (await item.commit({ status: 'terminated', deleted: true, deletedAt: now })) {
        ctx.logger.info({ fleetName: fleet.name }, 'fleet deleted');
      }
    }

    return;
  }

  const spec = fleet.spec as FleetSpec;
  const nodes = fleetNodes(spec);

  // As the original, a fleet left empty is deleted unless its `nodes` allow zero instances;
  // an SSH fleet has no `nodes`, so one whose every host failed or was removed goes.
  if (nodes === null && live === 0 && !(await inUse(rt, fleet.id))) {
    if (await item.commit({ status: 'terminated', deleted: true, deletedAt: ctx.now() })) {
      ctx.logger.info({ fleetName: fleet.name }, 'empty fleet deleted');
    }

    return;
  }

  // TODO: consolidation past `nodes.min` (terminating idle instances above `nodes.max` or
  // ones that no longer match the spec) is not done yet.
  if (isSshFleet(spec) || nodes === null || active >= nodes.min) {
    return;
  }

  // The rows are read under the lock that job submission takes to add instances to a fleet,
  // so both never pick the same instance number.
  await ctx.store.withLock(`fleet_instances_${fleet.id}`, () =>
    ctx.store.transaction(async (tx) => {
      const instances = await tx.find('instances', {
        where: { fleetId: fleet.id, deleted: false },
      });

      if (await item.commit({}, tx)) {
        await createMinInstances(tx, fleet, spec, instances, ctx.now());
      }
    }),
  );
  ctx.hint?.('instances');
}

/** The pipeline of non-deleted fleets. */
export function fleetPipeline(rt: SchedulerRuntime): PipelineDefinition<'fleets'> {
  return {
    name: 'FleetPipeline',
    table: 'fleets',
    due: (now) => ({
      ...dueByStatus(now, [[['active', 'terminating'], rt.options.intervals.fleets]]),
      deleted: false,
    }),
    process: (item) => processFleet(rt, item),
  };
}
