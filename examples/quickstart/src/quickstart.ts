import { createClient, followRun } from '@dstack/client';
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

    return await followRun(client, runName, {
      out: options.out,
      info: options.info,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
  } finally {
    await embedded.close();
  }
}
