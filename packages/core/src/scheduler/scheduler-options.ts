/** How often each kind of row is looked at again, in milliseconds. */
export interface SchedulerIntervals {
  jobsSubmitted: number;
  jobsProvisioning: number;
  jobsRunning: number;
  jobsTerminating: number;
  runsActive: number;
  runsRunning: number;
  runsTerminating: number;
  instancesPending: number;
  instancesActive: number;
  instancesBusy: number;
  fleets: number;
}

/** Rows a second each steady-state pipeline may visit; see `PipelineOptions`. */
export interface SchedulerRates {
  jobsRunning: number;
  runs: number;
  instances: number;
}

/** Tunables of the scheduler; tests pass short ones. */
export interface SchedulerOptions {
  /** Written to `lockOwner` with the pipeline name, so replicas can be told apart. */
  replicaId: string;
  intervals: SchedulerIntervals;
  rates: SchedulerRates;
  workersPerPipeline: number;
  leaseMillis: number;
  maxIdleMillis: number;
  /** How long a stopped job gets between SIGTERM and SIGKILL. */
  stopGraceMillis: number;
  /** A job whose agent is not up after this long fails (`waiting_runner_limit_exceeded`). */
  provisioningTimeoutMillis: number;
  /** A running job whose agent cannot be reached for this long fails (`instance_unreachable`). */
  unreachableMillis: number;
  /** An SSH host that cannot be provisioned for this long is given up on. */
  hostProvisioningTimeoutMillis: number;
  /** Offers tried per job before it fails with no capacity. */
  maxOffersTried: number;
  /** Agent pulls per job per pass, so a chatty job cannot hold a worker for long. */
  maxPullsPerPass: number;
  /** How often events past `eventsTtlSeconds` are deleted (the original: every 7 min). */
  eventsCleanupMillis: number;
}

/** The defaults: fast on an idle machine, gentle when many rows are active. */
export const defaultSchedulerOptions: SchedulerOptions = {
  replicaId: 'main',
  intervals: {
    jobsSubmitted: 1000,
    jobsProvisioning: 500,
    jobsRunning: 2000,
    jobsTerminating: 500,
    runsActive: 2000,
    runsRunning: 30_000,
    runsTerminating: 500,
    instancesPending: 2000,
    instancesActive: 10_000,
    instancesBusy: 60_000,
    fleets: 10_000,
  },
  rates: { jobsRunning: 300, runs: 200, instances: 100 },
  workersPerPipeline: 20,
  leaseMillis: 30_000,
  maxIdleMillis: 1000,
  stopGraceMillis: 10_000,
  provisioningTimeoutMillis: 10 * 60_000,
  unreachableMillis: 2 * 60_000,
  hostProvisioningTimeoutMillis: 10 * 60_000,
  maxOffersTried: 25,
  maxPullsPerPass: 20,
  eventsCleanupMillis: 7 * 60_000,
};

/** Options with every missing field taken from the defaults. */
export function resolveSchedulerOptions(
  options: Partial<Omit<SchedulerOptions, 'intervals' | 'rates'>> & {
    intervals?: Partial<SchedulerIntervals>;
    rates?: Partial<SchedulerRates>;
  } = {},
): SchedulerOptions {
  return {
    ...defaultSchedulerOptions,
    ...options,
    intervals: { ...defaultSchedulerOptions.intervals, ...options.intervals },
    rates: { ...defaultSchedulerOptions.rates, ...options.rates },
  };
}
