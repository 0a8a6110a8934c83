import { createClient } from '@dstack/client';
import type { Run } from '@dstack/client';
import { startEmbeddedServer } from './embedded-server.js';

export interface QuickstartOptions {
  /** A run configuration (`.dstack.yml`) to apply. */
  configPath: string;
  /** Where the server keeps its database, logs and jobs. */
  serverDir: string;
  /** Where the job's logs are printed as they come. */
  out: (text: string) => void;
  /** Where progress lines go. */
  info: (text: string) => void;
  /** Aborting stops the run (as `dstack stop --abort`); its last logs are still printed. */
  signal?: AbortSignal;
}

export interface QuickstartResult {
  /** The finished run; null when the configuration was a fleet. */
  run: Run | null;
  /** The job's exit status, or 1 when it ended without one and not done. */
  exitCode: number;
}

/** Boots an embedded server, applies the configuration, follows its logs to the end. */
export async function runQuickstart(options: QuickstartOptions): Promise<QuickstartResult> {
  const embedded = await startEmbeddedServer(options.serverDir);

  try {
    options.info(`dstack server running at ${embedded.url} (data in ${options.serverDir})`);
    const client = createClient({ url: embedded.url, token: embedded.server.adminToken });
    const applied = await client.apply(options.configPath);

    if (applied.kind === 'fleet') {
      options.info(`fleet ${applied.fleet.name} applied: ${applied.fleet.status}`);
      return { run: null, exitCode: 0 };
    }

    const runName = applied.run.run_spec.run_name ?? '';
    options.info(`run ${runName} submitted`);
    const stop = (): void => {
      options.info(`stopping run ${runName}`);
      client.stopRuns([runName], { abort: true }).catch((error: unknown) => {
        options.info(`could not stop ${runName}: ${String(error)}`);
      });
    };
    options.signal?.addEventListener('abort', stop, { once: true });

    for await (const line of client.logs(runName, { intervalMillis: 500 })) {
      options.out(line.message);
    }

    const run = await client.waitForRun(runName, { intervalMillis: 500 });
    const submission = run.latest_job_submission ?? run.jobs[0]?.job_submissions.at(-1) ?? null;
    const exitStatus = submission?.exit_status ?? null;
    const reason = submission?.termination_reason ?? run.termination_reason;
    const why = submission?.termination_reason_message ?? run.error ?? null;
    options.info(`run ${runName} ${run.status}${reason ? ` (${reason})` : ''}` +
      `${exitStatus === null ? '' : `, exit status ${exitStatus}`}${why ? `: ${why}` : ''}`);

    return { run, exitCode: exitStatus ?? (run.status === 'done' ? 0 : 1) };
  } finally {
    await embedded.close();
  }
}
