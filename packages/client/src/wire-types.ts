/** The slices of the dstack wire models the client reads (snake_case, as on the wire). */

export type RunStatus =
  | 'pending'
  | 'submitted'
  | 'provisioning'
  | 'running'
  | 'terminating'
  | 'terminated'
  | 'failed'
  | 'done';

/** Run statuses after which nothing changes any more. */
export const finishedRunStatuses: readonly RunStatus[] = ['terminated', 'failed', 'done'];

export interface JobSubmission {
  id: string;
  submission_num: number;
  status: string;
  status_message?: string;
  termination_reason: string | null;
  termination_reason_message?: string | null;
  exit_status: number | null;
  [field: string]: unknown;
}

export interface Job {
  job_spec: { job_name: string; job_num: number; replica_num: number; [field: string]: unknown };
  job_submissions: JobSubmission[];
  [field: string]: unknown;
}

export interface Run {
  id: string;
  project_name: string;
  status: RunStatus;
  status_message?: string;
  termination_reason: string | null;
  run_spec: RunSpec;
  jobs: Job[];
  latest_job_submission: JobSubmission | null;
  /** When a scheduled run starts next; null for other runs. */
  next_triggered_at?: string | null;
  error?: string | null;
  [field: string]: unknown;
}

export interface RunSpec {
  run_name: string | null;
  configuration: Record<string, unknown>;
  configuration_path: string | null;
  profile: Record<string, unknown> | null;
  repo_id?: string | null;
  repo_data?: Record<string, unknown> | null;
  [field: string]: unknown;
}

export interface RunPlan {
  project_name: string;
  user: string;
  run_spec: RunSpec;
  effective_run_spec?: RunSpec | null;
  current_resource: Run | null;
  action: 'create' | 'update' | null;
  job_plans?: unknown[];
  [field: string]: unknown;
}

export interface FleetSpec {
  configuration: Record<string, unknown>;
  configuration_path: string | null;
  profile: Record<string, unknown> | null;
  [field: string]: unknown;
}

export interface Fleet {
  id: string;
  name: string;
  project_name: string;
  status: string;
  spec: FleetSpec;
  instances: unknown[];
  [field: string]: unknown;
}

export interface FleetPlan {
  project_name: string;
  spec: FleetSpec;
  current_resource: Fleet | null;
  [field: string]: unknown;
}

/** A log event as `logs/poll` sends it: `message` is base64. */
export interface WireLogEvent {
  timestamp: string;
  log_source: 'stdout' | 'stderr';
  message: string;
}

export interface JobSubmissionLogs {
  logs: WireLogEvent[];
  external_url?: string | null;
  next_token?: string | null;
}
