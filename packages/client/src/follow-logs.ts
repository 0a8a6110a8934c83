import { finishedRunStatuses } from './wire-types.js';
import type { JobSubmissionLogs, Run } from './wire-types.js';

/** A log line as the client hands it out: the message decoded to text. */
export interface LogLine {
  /** As the server sent it (ISO-8601, UTC). */
  timestamp: string;
  logSource: 'stdout' | 'stderr';
  message: string;
  jobSubmissionId: string;
}

export interface LogsOptions {
  /** Keep reading until the run finishes (default true); false reads what is there now. */
  follow?: boolean;
  /** The agent's own logs instead of the job's. */
  diagnose?: boolean;
  jobNum?: number;
  replicaNum?: number;
  /** How long to wait between polls once everything so far was read (default 1 s). */
  intervalMillis?: number;
}

interface FollowInput {
  runName: string;
  getRun: (runName: string) => Promise<Run>;
  poll: (body: Record<string, unknown>) => Promise<JobSubmissionLogs>;
  options: LogsOptions;
}

const pageLimit = 1000;

function latestSubmissionId(run: Run, jobNum: number, replicaNum: number): string | null {
  const job = run.jobs.find((item) =>
    item.job_spec.job_num === jobNum && (item.job_spec.replica_num ?? 0) === replicaNum);
  const submissions = job?.job_submissions ?? [];
  return submissions.at(-1)?.id ?? null;
}

/**
 * Reads a job's logs as the CLI does: ascending pages of up to 1000 following `next_token`,
 * then again from the last timestamp seen. It moves on to a new submission when the job is
 * retried, and stops once the run has finished and its last logs were read.
 */
export async function* followLogs(input: FollowInput): AsyncGenerator<LogLine> {
  const follow = input.options.follow ?? true;
  const intervalMillis = input.options.intervalMillis ?? 1000;
  let submissionId: string | null = null;
  let lastTimestamp: string | null = null;

  async function* readNew(id: string): AsyncGenerator<LogLine> {
    const startTime = lastTimestamp;
    let nextToken: string | null = null;

    do {
      const page: JobSubmissionLogs = await input.poll({
        run_name: input.runName,
        job_submission_id: id,
        start_time: startTime,
        end_time: null,
        descending: false,
        next_token: nextToken,
        limit: pageLimit,
        diagnose: input.options.diagnose ?? false,
      });

      for (const event of page.logs) {
        lastTimestamp = event.timestamp;
        yield {
          timestamp: event.timestamp,
          logSource: event.log_source,
          message: Buffer.from(event.message, 'base64').toString('utf8'),
          jobSubmissionId: id,
        };
      }

      nextToken = page.next_token ?? null;
    } while (nextToken !== null);
  }

  for (;;) {
    const run = await input.getRun(input.runName);
    const finished = finishedRunStatuses.includes(run.status);
    const latest = latestSubmissionId(
      run,
      input.options.jobNum ?? 0,
      input.options.replicaNum ?? 0,
    );

    if (latest !== null && latest !== submissionId) {
      // A retry: what the old submission wrote since the last poll comes first.
      if (submissionId !== null) {
        yield* readNew(submissionId);
      }

      submissionId = latest;
      lastTimestamp = null;
    }

    if (submissionId !== null) {
      yield* readNew(submissionId);
    }

    // The run's status was read before the last pages, so they hold its final logs.
    if (!follow || finished) {
      return;
    }

    await new Promise((resolve) => setTimeout(resolve, intervalMillis));
  }
}
