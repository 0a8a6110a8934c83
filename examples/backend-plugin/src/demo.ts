import { join } from 'node:path';
import { createClient } from '@dstack/client';
import { createCipher, createFileLogStore } from '@dstack/core';
import { createServer } from '@dstack/server';
import {
  createSqliteStateStore,
  migrateToLatest,
  openSqliteDatabase,
} from '@dstack/storage-sqlite';
import { createSandboxBackendProvider } from './sandbox-backend-provider.js';

export interface SandboxDemoResult {
  runName: string;
  status: string;
  /** The job's log, as the server stored it. */
  output: string;
  /** The backend the job ran on, as the server recorded it. */
  backend: string | null;
}

/**
 * Boots a server whose project `main` has only the sandbox backend (registered through
 * `createServer({ providers })`), runs a task on it and follows its logs to the end.
 */
export async function runSandboxDemo(
  serverDir: string,
  write: (text: string) => void = () => undefined,
): Promise<SandboxDemoResult> {
  const db = openSqliteDatabase(join(serverDir, 'data', 'sqlite.db'));
  await migrateToLatest(db);
  const store = createSqliteStateStore({ db });
  const server = await createServer({
    store,
    logStore: createFileLogStore({ serverDir }),
    cipher: createCipher(),
    providers: [createSandboxBackendProvider({ scratchDir: join(serverDir, 'sandbox') })],
    settings: { serverDir },
    config: { projects: [{ name: 'main', backends: [{ type: 'sandbox' }] }] },
  });

  try {
    const url = await server.listen({ port: 0 });
    const client = createClient({ url, token: server.adminToken });
    await client.apply({ type: 'fleet', name: 'sandbox', nodes: '0..1', backends: ['sandbox'] });
    const applied = await client.apply({
      type: 'task',
      name: 'sandbox-hello',
      backends: ['sandbox'],
      resources: { cpu: 1, memory: '0.1GB..', disk: '1GB..' },
      commands: ['echo "hello from the sandbox"', 'echo "home is $HOME"'],
    });

    if (applied.kind !== 'run') {
      throw new Error('a task was applied as a fleet');
    }

    const runName = applied.run.run_spec.run_name ?? 'sandbox-hello';
    let output = '';

    for await (const line of client.logs(runName, { intervalMillis: 300 })) {
      output += line.message;
      write(line.message);
    }

    const run = await client.waitForRun(runName, { intervalMillis: 300 });
    const submission = run.jobs[0]?.job_submissions.at(-1);
    const provisioning = submission?.job_provisioning_data as { backend?: string } | undefined;
    return { runName, status: run.status, output, backend: provisioning?.backend ?? null };
  } finally {
    await server.close();
    await store.close();
  }
}
