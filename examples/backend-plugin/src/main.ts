import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
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

/** Boots a server whose project `main` uses the sandbox plugin, runs a task on it, and exits. */
async function main(): Promise<number> {
  const serverDir = await mkdtemp(join(tmpdir(), 'dstack-plugin-'));
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
    const { run } = await client.apply({
      type: 'task',
      name: 'sandbox-hello',
      backends: ['sandbox'],
      resources: { cpu: 1, memory: '0.1GB..', disk: '1GB..' },
      commands: ['echo "hello from the sandbox in $(pwd)"'],
    }) as { run: { run_spec: { run_name: string | null } } };
    const runName = run.run_spec.run_name ?? 'sandbox-hello';

    for await (const line of client.logs(runName)) {
      process.stdout.write(line.message);
    }

    const finished = await client.waitForRun(runName);
    console.log(`run ${runName}: ${finished.status}`);
    return finished.status === 'done' ? 0 : 1;
  } finally {
    await server.close();
    await store.close();
    await rm(serverDir, { recursive: true, force: true });
  }
}

process.exitCode = await main();
