import type { DstackClient } from './client.js';
import type { Run } from './wire-types.js';

export interface FollowRunOptions {
  /** Where the job's output goes, as it comes. */
  out: (text: string) => void;
  /** Where the closing status line goes. */
  info: (text: string) => void;
  /** Aborting stops the run (as `dstack stop --abort`); its last logs are still printed. */
  signal?: AbortSignal;
  intervalMillis?: number;
}

export interface FollowRunResult {
  run: Run;
  /** The job's exit status, or 1 when it ended without one and not done. */
  exitCode: number;
}

/** Prints a run's logs until it finishes, then a status line; resolves with its exit code. */
export async function followRun(
  client: DstackClient,
  runName: string,
  options: FollowRunOptions,
): Promise<FollowRunResult> {
  const intervalMillis = options.intervalMillis ?? 500;
  const stop = (): void => {
    options.info(`stopping run ${runName}`);
    client.stopRuns([runName], { abort: true }).catch((error: unknown) => {
      options.info(`could not stop ${runName}: ${String(error)}`);
    });
  };
  options.signal?.addEventListener('abort', stop, { once: true });

  for await (const line of client.logs(runName, { intervalMillis })) {
    options.out(line.message);
  }

  const run = await client.waitForRun(runName, { intervalMillis });
  const submission = run.latest_job_submission ?? run.jobs[0]?.job_submissions.at(-1) ?? null;
  const exitStatus = submission?.exit_status ?? null;
  const reason = submission?.termination_reason ?? run.termination_reason;
  const why = submission?.termination_reason_message ?? run.error ?? null;
  options.info(`run ${runName} ${run.status}${reason ? ` (${reason})` : ''}` +
    `${exitStatus === null ? '' : `, exit status ${exitStatus}`}${why ? `: ${why}` : ''}`);

  return { run, exitCode: exitStatus ?? (run.status === 'done' ? 0 : 1) };
}
