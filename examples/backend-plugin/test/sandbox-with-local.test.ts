import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '@dstack/client';
import type { DstackClient, Run } from '@dstack/client';
import { createCipher, createFileLogStore, createLocalBackendProvider } from '@dstack/core';
import { createServer } from '@dstack/server';
import type { DstackServer } from '@dstack/server';
import {
  createSqliteStateStore,
  migrateToLatest,
  openSqliteDatabase,
} from '@dstack/storage-sqlite';
import { createSandboxBackendProvider } from '../src/index.js';

function backendOf(run: Run): string | undefined {
  const data = run.jobs[0]?.job_submissions.at(-1)?.job_provisioning_data as
    { backend?: string } | undefined;
  return data?.backend;
}

async function untilIdleSandboxInstance(client: DstackClient): Promise<void> {
  const deadline = Date.now() + 30_000;

  while (Date.now() < deadline) {
    const instances = await client.request<{ backend: string; status: string }[]>(
      '/api/instances/list',
      { project_names: ['main'] },
    );

    if (instances.some((item) => item.backend === 'sandbox' && item.status === 'idle')) {
      return;
    }

    await new Promise((resolve) => setTimeout(resolve, 200));
  }

  throw new Error('the sandbox instance did not become idle');
}

describe('the sandbox plugin next to the built-in local backend', () => {
  let serverDir: string;
  let store: ReturnType<typeof createSqliteStateStore>;
  let server: DstackServer;
  let client: DstackClient;

  beforeAll(async () => {
    serverDir = await mkdtemp(join(tmpdir(), 'sandbox-local-'));
    const db = openSqliteDatabase(join(serverDir, 'data', 'sqlite.db'));
    await migrateToLatest(db);
    store = createSqliteStateStore({ db });
    server = await createServer({
      store,
      logStore: createFileLogStore({ serverDir }),
      cipher: createCipher(),
      providers: [
        createLocalBackendProvider({ serverDir }),
        createSandboxBackendProvider({ scratchDir: join(serverDir, 'sandbox') }),
      ],
      settings: { serverDir },
      config: { projects: [{ name: 'main', backends: [{ type: 'local' }, { type: 'sandbox' }] }] },
    });
    client = createClient({ url: await server.listen({ port: 0 }), token: server.adminToken });
    await client.apply({ type: 'fleet', name: 'sandbox', nodes: '0..1', backends: ['sandbox'] });
  });

  afterAll(async () => {
    await server?.close();
    await store?.close();
    await rm(serverDir, { recursive: true, force: true });
  });

  it('runs a task that names the sandbox there, though local is free', async () => {
    await client.apply({
      type: 'task',
      name: 'wants-sandbox',
      backends: ['sandbox'],
      resources: { cpu: 1, memory: '0.1GB..', disk: '1GB..' },
      commands: ['echo "home=$HOME"'],
    });

    const run = await client.waitForRun('wants-sandbox', { intervalMillis: 200 });

    expect(run.status).toBe('done');
    expect(backendOf(run)).toBe('sandbox');
  }, 60_000);

  it('keeps a task that names local off an idle sandbox instance', async () => {
    await client.apply({
      type: 'task',
      name: 'on-sandbox-fleet',
      fleets: ['sandbox'],
      resources: { cpu: 1, memory: '0.1GB..', disk: '1GB..' },
      commands: ['true'],
    });
    expect(backendOf(await client.waitForRun('on-sandbox-fleet', { intervalMillis: 200 })))
      .toBe('sandbox');
    await untilIdleSandboxInstance(client);

    await client.apply({
      type: 'task',
      name: 'wants-local',
      backends: ['local'],
      resources: { cpu: 1, memory: '0.1GB..', disk: '1GB..' },
      commands: ['echo local'],
    });

    const run = await client.waitForRun('wants-local', { intervalMillis: 200 });

    expect(run.status).toBe('done');
    expect(backendOf(run)).toBe('local');
  }, 60_000);
});
