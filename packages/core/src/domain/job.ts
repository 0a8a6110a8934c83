import type { JobRecord } from '../records.js';
import { toWireTime, toWireTimeOrNull } from '../util/time.js';
import type { JobProvisioningData, Requirements } from './resources.js';

export type JobStatus =
  | 'submitted'
  | 'provisioning'
  | 'pulling'
  | 'running'
  | 'terminating'
  | 'terminated'
  | 'aborted'
  | 'failed'
  | 'done';

export const finishedJobStatuses: readonly JobStatus[] = [
  'terminated',
  'aborted',
  'failed',
  'done',
];

/** Whether a job status is final. */
export function isJobFinished(status: string): boolean {
  return (finishedJobStatuses as readonly string[]).includes(status);
}

/** The wire `JobSpec` (§4.6 of the API spec), every field present. */
export interface JobSpec {
  replica_num: number;
  job_num: number;
  job_name: string;
  jobs_per_replica: number;
  replica_group: string;
  app_specs: { port: number; map_to_port: number | null; app_name: string }[] | null;
  user: {
    uid: number | null;
    gid: number | null;
    username: string | null;
    groupname: string | null;
  } | null;
  commands: string[];
  env: Record<string, string>;
  home_dir: string | null;
  image_name: string;
  privileged: boolean;
  single_branch: boolean | null;
  max_duration: number | null;
  stop_duration: number | null;
  utilization_policy: unknown;
  registry_auth: unknown;
  requirements: Requirements;
  retry: { on_events: string[]; duration: number } | null;
  volumes: unknown[] | null;
  ssh_key: { private: string; public: string } | null;
  working_dir: string | null;
  repo_data: unknown;
  repo_code_hash: string | null;
  repo_dir: string | null;
  repo_exists_action: string | null;
  file_archives: unknown[];
  service_port: number | null;
  probes: unknown[];
  node_group_index: number;
  node_group_name: string;
  node_group_job_index: number;
}

/** The wire `JobRuntimeData`. */
export interface JobRuntimeData {
  network_mode: 'host' | 'bridge';
  gpu: number | null;
  cpu: number | null;
  memory: number | null;
  ports: Record<string, number> | null;
  volume_names: string[] | null;
  offer: unknown;
  working_dir: string | null;
  username: string | null;
}

/** The wire `JobSubmission`. */
export interface JobSubmission {
  id: string;
  submission_num: number;
  deployment_num: number;
  submitted_at: string;
  last_processed_at: string;
  finished_at: string | null;
  inactivity_secs: number | null;
  status: JobStatus;
  status_message: string;
  termination_reason: string | null;
  termination_reason_message: string | null;
  exit_status: number | null;
  job_provisioning_data: JobProvisioningData | null;
  job_runtime_data: JobRuntimeData | null;
  error: string | null;
  probes: { success_streak: number }[];
  image_pull_progress: null;
}

/** The wire `Job`: its spec and its submissions, oldest first. */
export interface Job {
  job_spec: JobSpec;
  job_submissions: JobSubmission[];
  job_connection_info: null;
}

const jobErrors: Record<string, string> = {
  instance_unreachable: 'instance unreachable',
  waiting_instance_limit_exceeded: 'waiting instance limit exceeded',
  volume_error: 'volume error',
  gateway_error: 'gateway error',
  scaled_down: 'scaled down',
  inactivity_duration_exceeded: 'inactivity duration exceeded',
  terminated_due_to_utilization_policy: 'utilization policy',
  ports_binding_failed: 'ports binding failed',
  creating_container_error: 'runner error',
  executor_error: 'executor error',
  max_duration_exceeded: 'max duration exceeded',
  log_quota_exceeded: 'log quota exceeded',
};

/** The short error a job termination reason shows, or null when the status says it all. */
export function jobTerminationError(reason: string | null): string | null {
  return reason === null ? null : (jobErrors[reason] ?? null);
}

/** The status message of a submission: the status, or a reason-specific word. */
function submissionStatusMessage(record: JobRecord): string {
  if (record.status === 'done') {
    return 'exited (0)';
  }

  if (record.status === 'failed') {
    if (record.terminationReason === 'container_exited_with_error') {
      return `exited (${record.exitStatus ?? 1})`;
    }

    if (record.terminationReason === 'failed_to_start_due_to_no_capacity') {
      return 'no offers';
    }

    if (record.terminationReason === 'interrupted_by_no_capacity') {
      return 'interrupted';
    }

    return 'error';
  }

  if (record.status === 'terminated') {
    if (record.terminationReason === 'terminated_by_user') {
      return 'stopped';
    }

    if (record.terminationReason === 'aborted_by_user') {
      return 'aborted';
    }
  }

  return record.status;
}

/** Serializes one submission (a job row) for the wire. */
export function jobSubmissionToWire(record: JobRecord): JobSubmission {
  return {
    id: record.id,
    submission_num: record.submissionNum,
    deployment_num: record.deploymentNum,
    submitted_at: toWireTime(record.submittedAt),
    last_processed_at: toWireTime(record.lastProcessedAt),
    finished_at: toWireTimeOrNull(record.finishedAt),
    inactivity_secs: null,
    status: record.status as JobStatus,
    status_message: submissionStatusMessage(record),
    termination_reason: record.terminationReason,
    termination_reason_message: record.terminationReasonMessage,
    exit_status: record.exitStatus,
    job_provisioning_data: (record.provisioningData as JobProvisioningData | null) ?? null,
    job_runtime_data: (record.runtimeData as JobRuntimeData | null) ?? null,
    error: jobTerminationError(record.terminationReason),
    probes: [],
    image_pull_progress: null,
  };
}

/**
 * Groups submission rows into wire jobs by (replica, job number), each with its latest
 * `submissionsLimit` submissions, oldest first. The spec comes from the latest submission.
 */
export function jobsToWire(records: readonly JobRecord[], submissionsLimit: number): Job[] {
  const groups = new Map<string, JobRecord[]>();

  for (const record of records) {
    const key = `${record.replicaNum}:${record.jobNum}`;
    const group = groups.get(key) ?? [];
    group.push(record);
    groups.set(key, group);
  }

  const ordered = [...groups.values()].sort(
    (a, b) => a[0]!.replicaNum - b[0]!.replicaNum || a[0]!.jobNum - b[0]!.jobNum,
  );

  return ordered.map((group) => {
    const submissions = [...group].sort((a, b) => a.submissionNum - b.submissionNum);
    const latest = submissions[submissions.length - 1]!;
    const kept = submissionsLimit <= 0 ? [] : submissions.slice(-submissionsLimit);

    return {
      job_spec: latest.jobSpec as JobSpec,
      job_submissions: kept.map(jobSubmissionToWire),
      job_connection_info: null,
    };
  });
}
