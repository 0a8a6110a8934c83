import type { JobStatus } from '../domain/job.js';
import type { RetryEvent } from '../domain/configurations.js';
import type { RunStatus } from '../domain/run.js';

/** The final status each job termination reason leads to. */
const jobReasonStatus: Record<string, JobStatus> = {
  failed_to_start_due_to_no_capacity: 'failed',
  interrupted_by_no_capacity: 'failed',
  instance_unreachable: 'failed',
  instance_access_revoked: 'failed',
  waiting_instance_limit_exceeded: 'failed',
  waiting_runner_limit_exceeded: 'failed',
  terminated_by_user: 'terminated',
  volume_error: 'failed',
  gateway_error: 'failed',
  scaled_down: 'terminated',
  done_by_runner: 'done',
  aborted_by_user: 'aborted',
  terminated_by_server: 'terminated',
  inactivity_duration_exceeded: 'terminated',
  terminated_due_to_utilization_policy: 'terminated',
  container_exited_with_error: 'failed',
  ports_binding_failed: 'failed',
  creating_container_error: 'failed',
  executor_error: 'failed',
  max_duration_exceeded: 'terminated',
  log_quota_exceeded: 'failed',
};

/** The final job status of a termination reason; unknown reasons count as failures. */
export function jobStatusForReason(reason: string | null): JobStatus {
  return reason === null ? 'failed' : (jobReasonStatus[reason] ?? 'failed');
}

/** The retry event a job termination reason triggers, or null when it is never retried. */
export function retryEventForReason(reason: string | null): RetryEvent | null {
  if (reason === 'failed_to_start_due_to_no_capacity') {
    return 'no-capacity';
  }

  if (reason === 'interrupted_by_no_capacity') {
    return 'interruption';
  }

  return jobStatusForReason(reason) === 'failed' ? 'error' : null;
}

/** The final run status of a run termination reason. */
export function runStatusForReason(reason: string | null): RunStatus {
  switch (reason) {
    case 'all_jobs_done':
      return 'done';
    case 'stopped_by_user':
    case 'aborted_by_user':
      return 'terminated';
    default:
      return 'failed';
  }
}

/** The reason given to a run's unfinished jobs when the run terminates for `reason`. */
export function jobReasonForRunReason(reason: string | null): string {
  switch (reason) {
    case 'all_jobs_done':
      return 'done_by_runner';
    case 'stopped_by_user':
      return 'terminated_by_user';
    case 'aborted_by_user':
      return 'aborted_by_user';
    default:
      return 'terminated_by_server';
  }
}

/**
 * Back-off before a retrying run resubmits, by its resubmission attempt: 15 s, 30 s, 1 min,
 * 2 min, 5 min, then 10 min.
 */
export function resubmissionDelayMillis(attempt: number): number {
  const delaysSeconds = [15, 30, 60, 120, 300, 600];
  const index = Math.min(Math.max(attempt - 1, 0), delaysSeconds.length - 1);
  return delaysSeconds[index]! * 1000;
}
