import type { CoreContext } from '../context.js';
import type { LeasedTableName } from '../records.js';
import { createAgentCache } from './agents.js';
import { fleetPipeline } from './fleet-pipeline.js';
import { busyInstancePipeline, instancePipeline } from './instance-pipeline.js';
import { jobProvisioningPipeline, jobRunningPipeline } from './job-running.js';
import { jobSubmittedPipeline } from './job-submitted.js';
import { jobTerminatingPipeline } from './job-terminating.js';
import { deleteExpiredEvents } from '../services/events-retention.js';
import type { JobMetricsTaskOptions } from './job-metrics.js';
import { startJobMetricsTasks } from './job-metrics.js';
import { startPeriodicTask } from './periodic-task.js';
import type { PipelineHandle } from './pipeline.js';
import { startPipeline } from './pipeline.js';
import { runningRunPipeline, runPipeline } from './run-pipeline.js';
import type {
  SchedulerIntervals,
  SchedulerOptions,
  SchedulerRates,
} from './scheduler-options.js';
import { resolveSchedulerOptions } from './scheduler-options.js';
import type { SchedulerRuntime } from './runtime.js';

/** Options of `startScheduler`; every field has a default. */
export type StartSchedulerOptions = Partial<Omit<SchedulerOptions, 'intervals' | 'rates'>> & {
  intervals?: Partial<SchedulerIntervals>;
  rates?: Partial<SchedulerRates>;
} & JobMetricsTaskOptions;

/** A running scheduler. */
export interface Scheduler {
  /** Wakes the pipelines of a table at once (what `ctx.hint` calls). */
  hint(table: string): void;
  /** Stops every pipeline and waits for the rows in hand. Running jobs keep running. */
  stop(): Promise<void>;
}

/**
 * Starts the background pipelines (jobs, runs, instances, fleets) and the periodic tasks
 * (events TTL, job metrics collection and TTL) over the context's store.
 * It sets `ctx.hint` so API writes wake the pipelines, and restores it on stop.
 */
export function startScheduler(ctx: CoreContext, options: StartSchedulerOptions = {}): Scheduler {
  const resolved = resolveSchedulerOptions(options);
  const agents = createAgentCache(ctx);
  const rt: SchedulerRuntime = { ctx, options: resolved, agents, projectNames: new Map() };
  const deps = { store: ctx.store, logger: ctx.logger, now: ctx.now };
  const pipelineOptions = {
    workers: resolved.workersPerPipeline,
    leaseMillis: resolved.leaseMillis,
    maxIdleMillis: resolved.maxIdleMillis,
  };
  const byTable = new Map<string, PipelineHandle[]>();
  const add = (table: LeasedTableName, handle: PipelineHandle): void => {
    byTable.set(table, [...(byTable.get(table) ?? []), handle]);
  };

  const previousHint = ctx.hint;
  const hint = (table: string): void => {
    for (const handle of byTable.get(table) ?? []) {
      handle.wake();
    }
  };

  // Steady-state rows are many and quick: more workers, so batches are large.
  const rated = (maxRowsPerSecond: number) => ({
    ...pipelineOptions,
    workers: Math.max(pipelineOptions.workers, Math.ceil(maxRowsPerSecond / 2)),
    maxRowsPerSecond,
  });

  ctx.hint = hint;
  add('jobs', startPipeline(deps, jobSubmittedPipeline(rt), pipelineOptions));
  add('jobs', startPipeline(deps, jobProvisioningPipeline(rt), pipelineOptions));
  add('jobs', startPipeline(deps, jobRunningPipeline(rt), rated(resolved.rates.jobsRunning)));
  add('jobs', startPipeline(deps, jobTerminatingPipeline(rt), pipelineOptions));
  add('runs', startPipeline(deps, runPipeline(rt), pipelineOptions));
  add('runs', startPipeline(deps, runningRunPipeline(rt), rated(resolved.rates.runs)));
  add('instances', startPipeline(deps, instancePipeline(rt), pipelineOptions));
  add('instances', startPipeline(deps, busyInstancePipeline(rt), rated(resolved.rates.instances)));
  add('fleets', startPipeline(deps, fleetPipeline(rt), pipelineOptions));
  const eventsCleanup = startPeriodicTask(
    ctx.logger,
    'delete-expired-events',
    resolved.eventsCleanupMillis,
    async () => {
      const deleted = await deleteExpiredEvents(ctx);

      if (deleted > 0) {
        ctx.logger.info({ deleted }, 'expired events deleted');
      }
    },
  );
  const jobMetrics = startJobMetricsTasks(ctx, agents, options);
  ctx.logger.info({ replicaId: resolved.replicaId }, 'scheduler started');

  return {
    hint,
    async stop() {
      if (ctx.hint === hint) {
        ctx.hint = previousHint;
      }

      await Promise.all([
        ...[...byTable.values()].flat().map((handle) => handle.stop()),
        eventsCleanup.stop(),
        jobMetrics.stop(),
      ]);
      await agents.closeAll();
      ctx.logger.info({}, 'scheduler stopped');
    },
  };
}
