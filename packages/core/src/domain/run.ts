import type { JobRecord, RunRecord } from '../records.js';
import { toWireTime, toWireTimeOrNull } from '../util/time.js';
import { nextScheduledTime } from './cron-schedule.js';
import type { Job, JobSpec, JobSubmission } from './job.js';
import { jobsToWire } from './job.js';
import type { InstanceOffer, JobProvisioningData } from './resources.js';

export type RunStatus =
  | 'pending'
  | 'submitted'
  | 'provisioning'
  | 'running'
  | 'terminating'
  | 'terminated'
  | 'failed'
  | 'done';

export const finishedRunStatuses: readonly RunStatus[] = ['terminated', 'failed', 'done'];

/** Whether a run status is final. */
export function isRunFinished(status: string): boolean {
  return (finishedRunStatuses as readonly string[]).includes(status);
}

/** The wire `RunSpec`: kept as the server normalised it. */
export type RunSpec = Record<string, unknown> & {
  run_name: string | null;
  configuration: Record<string, unknown>;
};

/**
 * The cron expressions of a run's `schedule` (the configuration's, else the profile's), or
 * null for a run that is not scheduled.
 */
export function runSchedule(spec: RunSpec): string[] | null {
  const profile = spec.profile as { schedule?: unknown } | null | undefined;
  const schedule = (spec.configuration.schedule ?? profile?.schedule ?? null) as
    { cron?: unknown } | null;
  const cron = schedule?.cron;

  if (cron === null || cron === undefined) {
    return null;
  }

  return Array.isArray(cron) ? cron.map(String) : [String(cron)];
}

/** The wire `Run` (§4.3 of the API spec). */
export interface Run {
  id: string;
  project_name: string;
  user: string;
  fleet: { id: string; name: string } | null;
  submitted_at: string;
  last_processed_at: string;
  status: RunStatus;
  status_message: string;
  termination_reason: string | null;
  run_spec: RunSpec;
  jobs: Job[];
  latest_job_submission: JobSubmission | null;
  cost: number;
  service: { url: string; model: unknown; options: Record<string, unknown> } | null;
  deployment_num: number;
  error: string | null;
  deleted: boolean | null;
  next_triggered_at: string | null;
}

/** One job's offers in a plan. */
export interface JobPlan {
  job_spec: JobSpec;
  offers: InstanceOffer[];
  total_offers: number;
  max_price: number | null;
}

/** The wire `RunPlan`. */
export interface RunPlan {
  project_name: string;
  user: string;
  run_spec: RunSpec;
  effective_run_spec: RunSpec;
  job_plans: JobPlan[];
  current_resource: Run | null;
  action: 'create' | 'update';
}

const runErrors: Record<string, string> = {
  retry_limit_exceeded: 'retry limit exceeded',
  server_error: 'server error',
  gateway_error: 'gateway error',
};

/** What the run's jobs have cost so far: price per hour times hours, over every submission. */
export function runCost(jobs: readonly JobRecord[], now: number): number {
  let cost = 0;

  for (const job of jobs) {
    const provisioning = job.provisioningData as JobProvisioningData | null;

    if (provisioning === null || provisioning === undefined) {
      continue;
    }

    const end = job.finishedAt ?? now;
    cost += (provisioning.price * Math.max(0, end - job.submittedAt)) / 3_600_000;
  }

  return Math.round(cost * 10_000) / 10_000;
}

function runStatusMessage(run: RunRecord, latest: readonly JobRecord[]): string {
  if (run.status === 'pending' && run.resubmissionAttempt > 0) {
    return 'retrying';
  }

  if (latest.length > 0 && latest.every((job) => job.status === 'pulling')) {
    return 'pulling';
  }

  return run.status;
}

/**
 * As the original shows it: the schedule's next time from now while the run is unfinished,
 * so a running scheduled run already says when it starts again; nothing once it is finished.
 */
function wireNextTrigger(run: RunRecord, spec: RunSpec, now: number): number | null {
  const schedule = runSchedule(spec);

  if (schedule === null || isRunFinished(run.status)) {
    return null;
  }

  try {
    return nextScheduledTime(schedule, now);
  } catch {
    // A stored spec is validated on the way in; an unreadable one keeps what is stored.
    return run.nextTriggeredAt;
  }
}

/** How a run is serialized: which jobs and how many submissions per job. */
export interface RunToWireOptions {
  projectName: string;
  userName: string;
  fleet: { id: string; name: string } | null;
  includeJobs: boolean;
  /** Latest submissions kept per job. */
  submissionsLimit: number;
  now: number;
}

/** The latest submission of every job of a run. */
export function latestSubmissions(jobs: readonly JobRecord[]): JobRecord[] {
  const latest = new Map<string, JobRecord>();

  for (const job of jobs) {
    const key = `${job.replicaNum}:${job.jobNum}`;
    const current = latest.get(key);

    if (current === undefined || current.submissionNum < job.submissionNum) {
      latest.set(key, job);
    }
  }

  return [...latest.values()].sort((a, b) => a.replicaNum - b.replicaNum || a.jobNum - b.jobNum);
}

/** Serializes a run and its submissions for the wire. */
export function runToWire(
  run: RunRecord,
  jobs: readonly JobRecord[],
  options: RunToWireOptions,
): Run {
  const wireJobs = jobsToWire(jobs, options.submissionsLimit);
  const latest = latestSubmissions(jobs);
  const spec = run.runSpec as RunSpec;
  const isService = spec.configuration.type === 'service';
  const firstJob = wireJobs[0];
  const latestSubmission = firstJob?.job_submissions[firstJob.job_submissions.length - 1] ?? null;

  return {
    id: run.id,
    project_name: options.projectName,
    user: options.userName,
    fleet: options.fleet,
    submitted_at: toWireTime(run.submittedAt),
    last_processed_at: toWireTime(run.lastProcessedAt),
    status: run.status as RunStatus,
    status_message: runStatusMessage(run, latest),
    termination_reason: run.terminationReason,
    run_spec: spec,
    jobs: options.includeJobs ? wireJobs : [],
    latest_job_submission: latestSubmission,
    cost: runCost(jobs, options.now),
    service: isService
      ? {
          url: `/proxy/services/${options.projectName}/${run.runName}/`,
          model: null,
          options: {},
        }
      : null,
    deployment_num: run.deploymentNum,
    error: run.terminationReason === null ? null : (runErrors[run.terminationReason] ?? null),
    deleted: run.deleted,
    next_triggered_at: toWireTimeOrNull(wireNextTrigger(run, spec, options.now)),
  };
}
