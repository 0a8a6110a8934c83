import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '@dstack/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  api,
  buildFastBackend,
  createTestDatabase,
  exitOf,
  fastOnlyConfig,
  requireBuiltBin,
  serverBin,
  startReplica,
  stopAllReplicas,
} from './fixtures-replicas/replica-cluster.js';
import type { Replica, TestDatabase } from './fixtures-replicas/replica-cluster.js';

// The seed's way from one replica to many: a server on SQLite, copy-state into Postgres, and
// the same server directory started on the copy. The API must answer as it did before.

let root: string;
let serverDir: string;
let db: TestDatabase;
let pluginPath: string;

function env(extra: Record<string, string> = {}): Record<string, string> {
  return {
    DSTACK_SERVER_ADMIN_TOKEN: 'copy-state-admin-token',
    DSTACK_SERVER_BACKEND_PLUGINS: pluginPath,
    DSTACK_TEST_FAST_BACKEND_DIR: join(root, 'fast-state'),
    DSTACK_TEST_FAST_BACKEND_JOB_MILLIS: '200',
    ...extra,
  };
}

/** The answers a user sees; compared before and after the move. */
async function answers(replica: Replica): Promise<Record<string, unknown>> {
  const runs = await api(replica, '/api/runs/list', { project_name: 'main' });
  const jobSubmissionId = (runs as { jobs: { job_submissions: { id: string }[] }[] }[])
    .find((run) => (run as unknown as { run_spec: { run_name: string } }).run_spec.run_name ===
      'copied-1')?.jobs[0]?.job_submissions[0]?.id;

  return {
    runs,
    run: await api(replica, '/api/project/main/runs/get', { run_name: 'copied-1' }),
    projects: await api(replica, '/api/projects/list', {}),
    project: await api(replica, '/api/projects/other/get', {}),
    users: await api(replica, '/api/users/list', {}),
    fleets: await api(replica, '/api/project/main/fleets/list', {}),
    secrets: await api(replica, '/api/project/main/secrets/list', {}),
    secret: await api(replica, '/api/project/main/secrets/get', { name: 'hf_token' }),
    logs: await api(replica, '/api/project/main/logs/poll', {
      run_name: 'copied-1', job_submission_id: jobSubmissionId, limit: 1000, diagnose: false,
    }),
  };
}

function copyState(from: string, to: string) {
  return new Promise<{ code: number | null; output: string }>((resolve) => {
    const child = spawn(process.execPath, [serverBin, 'copy-state', '--from', from, '--to', to], {
      env: { ...process.env, DSTACK_SERVER_DIR: serverDir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('exit', (code) => resolve({ code, output }));
  });
}

beforeAll(async () => {
  requireBuiltBin();
  root = await mkdtemp(join(tmpdir(), 'dstack-copy-serve-'));
  serverDir = join(root, 'server');
  pluginPath = await buildFastBackend(join(root, 'plugin'));
  db = await createTestDatabase('copy_serve');
}, 60_000);

afterAll(async () => {
  await stopAllReplicas();
  await db?.drop();
  await rm(root, { recursive: true, force: true });
}, 60_000);

describe('a state copied from SQLite into Postgres', () => {
  it('serves the same API answers from the copy as from the original', async () => {
    const onSqlite = await startReplica({
      name: 'sqlite',
      serverDir,
      env: env(),
      config: fastOnlyConfig,
    });
    await api(onSqlite, '/api/users/create', { username: 'alice', global_role: 'user' });
    await api(onSqlite, '/api/projects/create', { project_name: 'other', is_public: true });
    await api(onSqlite, '/api/project/main/secrets/create_or_update',
      { name: 'hf_token', value: 'hf_secret_value' });
    const client = createClient({ url: onSqlite.url, token: onSqlite.token });
    await client.apply({ type: 'fleet', name: 'fast-fleet', nodes: '0..', backends: ['fast'] });

    for (const name of ['copied-1', 'copied-2']) {
      await client.apply({ type: 'task', name, commands: ['true'] });
      await client.waitForRun(name, { timeoutMillis: 30_000, intervalMillis: 200 });
    }

    const before = await answers(onSqlite);
    onSqlite.child.kill('SIGTERM');
    expect(await exitOf(onSqlite.child)).toBe(0);

    const sqlitePath = join(serverDir, 'data', 'sqlite.db');
    const copied = await copyState(sqlitePath, db.url);
    expect(copied.output).toMatch(/row counts match/);
    expect(copied.code).toBe(0);

    const onPostgres = await startReplica({
      name: 'postgres',
      serverDir,
      env: env({ DSTACK_DATABASE_URL: db.url }),
    });
    const after = await answers(onPostgres);

    expect((before.runs as unknown[]).length).toBe(2);
    expect((before.logs as { logs: unknown[] }).logs.length).toBeGreaterThan(0);
    expect(after).toEqual(before);
  }, 120_000);
});
