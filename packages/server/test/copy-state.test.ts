import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tableColumns } from '@dstack/core';
import type {
  FleetRecord,
  JobRecord,
  ProjectRecord,
  RunRecord,
  SecretRecord,
  StateStore,
  TableName,
  UserRecord,
} from '@dstack/core';
import { openPostgresPool } from '@dstack/storage-postgres';
import { openSqliteDatabase, ReplicaLockError } from '@dstack/storage-sqlite';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { copyState, runCopyStateCommand } from '../src/commands/copy-state.js';
import type { CommandIo } from '../src/commands/copy-state.js';
import { openStateStore } from '../src/compose/state-store.js';

const postgresBase =
  process.env.DSTACK_TEST_POSTGRES_URL ?? 'postgresql://postgres@127.0.0.1:5432/test';
const admin = openPostgresPool({ connectionString: postgresBase, max: 2 });
const schemas: string[] = [];
let serverDir: string;
let sourcePath: string;
let targetUrl: string;
let schema: string;

const t0 = Date.UTC(2026, 2, 1, 12, 0, 0, 250);

function user(name: string, role: 'admin' | 'user'): UserRecord {
  return {
    id: randomUUID(), name, createdAt: t0, token: `enc:aes:key1:${name}`,
    tokenHash: createHash('sha256').update(name).digest('hex'), globalRole: role,
    email: `${name}@example.com`, active: true, deleted: false, originalName: null,
    sshPublicKey: 'ssh-ed25519 AAAAC3Nz', sshPrivateKey: 'enc:aes:key1:private',
  };
}

function seed(): Record<string, unknown[]> {
  const admin = user('admin', 'admin');
  const alice = user('alice', 'user');
  const project: ProjectRecord = {
    id: randomUUID(), name: 'main', createdAt: t0, ownerId: admin.id, isPublic: false,
    templatesRepo: null, deleted: false, originalName: null, sshPublicKey: 'ssh-rsa AAAA',
    sshPrivateKey: 'enc:aes:key1:pk',
  };
  const fleet: FleetRecord = {
    id: randomUUID(), projectId: project.id, name: 'local-fleet', createdAt: t0,
    lastProcessedAt: t0 + 1, deleted: false, deletedAt: null, status: 'active',
    statusMessage: null, spec: { configuration: { type: 'fleet', nodes: { min: 1 } } },
    consolidationAttempt: 2, lockToken: null, lockOwner: null, lockExpiresAt: null,
  };
  const names = ['quiet-fox-1', 'brave-owl-2', 'calm-cat-3'];
  const runs: RunRecord[] = names.map((runName, n) => ({
    id: randomUUID(), projectId: project.id, userId: alice.id, repoId: null,
    fleetId: fleet.id, runName, submittedAt: t0 + n, lastProcessedAt: t0 + n,
    status: n === 0 ? 'running' : 'done', statusMessage: null, terminationReason: null,
    resubmissionAttempt: 0, runSpec: { run_name: runName, configuration: { type: 'task' } },
    serviceSpec: null, priority: n, deploymentNum: 0, deleted: false, nextTriggeredAt: null,
    lockToken: n === 0 ? randomUUID() : null, lockOwner: n === 0 ? 'RunPipeline' : null,
    lockExpiresAt: n === 0 ? t0 + 30_000 : null,
  }));
  const jobs: JobRecord[] = runs.flatMap((run) =>
    [0, 1].map((jobNum) => ({
      id: randomUUID(), projectId: project.id, runId: run.id, fleetId: fleet.id,
      runName: run.runName, jobNum, jobName: `${run.runName}-${jobNum}-0`, replicaNum: 0,
      submissionNum: 0, deploymentNum: 0, submittedAt: t0, lastProcessedAt: t0 + 5,
      finishedAt: run.status === 'done' ? t0 + 60_000 : null, status: run.status,
      statusMessage: null, terminationReason: run.status === 'done' ? 'done_by_runner' : null,
      terminationReasonMessage: null, exitStatus: run.status === 'done' ? 0 : null,
      jobSpec: { commands: ['python train.py'], env: { A: '1' } },
      provisioningData: { hostname: '127.0.0.1', price: 0.0 }, runtimeData: null,
      runnerTimestamp: 1_764_000_000_123_456, disconnectedAt: null, instanceId: null,
      usedInstanceId: null, instanceAssigned: true, gracefulTerminationAttempts: null,
      removeAt: null, waitingMasterJob: false, lockToken: null, lockOwner: null,
      lockExpiresAt: null,
    })),
  );
  const secrets: SecretRecord[] = ['HF_TOKEN', 'WANDB_KEY'].map((name) => ({
    id: randomUUID(), projectId: project.id, name, value: `enc:aes:key1:${name}`,
    createdAt: t0, updatedAt: t0 + 10,
  }));
  const members = [admin, alice].map((member, memberNum) => ({
    id: randomUUID(), projectId: project.id, userId: member.id,
    projectRole: memberNum === 0 ? 'admin' : 'user', memberNum,
  }));

  return {
    users: [admin, alice],
    projects: [project],
    members,
    fleets: [fleet],
    runs,
    jobs,
    secrets,
  };
}

async function allRows(store: StateStore): Promise<Record<string, unknown[]>> {
  const rows: Record<string, unknown[]> = {};

  for (const table of Object.keys(tableColumns) as TableName[]) {
    rows[table] = await store.find(table, { orderBy: [['id', 'asc']] });
  }

  return rows;
}

function fingerprint(dir: string): Record<string, string> {
  const files: Record<string, string> = {};

  for (const name of readdirSync(dir).sort()) {
    files[name] = createHash('sha256').update(readFileSync(join(dir, name))).digest('hex');
  }

  return files;
}

beforeAll(async () => {
  await admin.query('select 1');
});

beforeEach(async () => {
  serverDir = mkdtempSync(join(tmpdir(), 'dstack-copy-state-test-'));
  sourcePath = join(serverDir, 'data', 'sqlite.db');
  const store = await openStateStore({ serverDir });
  const rows = seed();

  for (const [table, records] of Object.entries(rows)) {
    await store.insert(table as TableName, records as never);
  }

  await store.close();

  schema = `copy_${randomBytes(4).toString('hex')}`;
  schemas.push(schema);
  await admin.query(`create schema "${schema}"`);
  const url = new URL(postgresBase);
  url.searchParams.set('options', `-c search_path=${schema}`);
  targetUrl = url.toString();
});

afterEach(() => {
  rmSync(serverDir, { recursive: true, force: true });
});

afterAll(async () => {
  for (const name of schemas) {
    await admin.query(`drop schema if exists "${name}" cascade`);
  }

  await admin.end();
});

async function openTarget(): Promise<StateStore> {
  return openStateStore({ serverDir, databaseUrl: targetUrl, poolSize: 2, maxOverflow: 0 });
}

describe('copyState', () => {
  it('copies every table into an empty Postgres database, row for row', async () => {
    const before = fingerprint(join(serverDir, 'data'));
    const progress: string[] = [];

    const result = await copyState({
      from: sourcePath,
      to: targetUrl,
      batchSize: 2,
      progress: ({ table, copied, total }) => progress.push(`${table} ${copied}/${total}`),
    });

    expect(result.rows).toEqual({
      users: 2, projects: 1, members: 2, backends: 0, secrets: 2, repos: 0, fleets: 1,
      instances: 0, runs: 3, jobs: 6, events: 0, repo_creds: 0, codes: 0, user_public_keys: 0,
      job_metrics_points: 0,
    });
    expect(progress).toEqual(
      expect.arrayContaining(['jobs 0/6', 'jobs 2/6', 'jobs 4/6', 'jobs 6/6', 'events 0/0']),
    );
    expect(fingerprint(join(serverDir, 'data'))).toEqual(before);

    const source = await openStateStore({ serverDir });
    const target = await openTarget();
    try {
      expect(await allRows(target)).toEqual(await allRows(source));
      const [run] = await target.find('runs', { where: { status: 'running' } });
      expect(run.lockExpiresAt).toBe(t0 + 30_000);
      const { rows } = await admin.query(`select count(*)::int as n from "${schema}".jobs`);
      expect(rows[0].n).toBe(6);
    } finally {
      await source.close();
      await target.close();
    }
  });

  it('refuses a target that already holds state and leaves it as it was', async () => {
    await copyState({ from: sourcePath, to: targetUrl });
    const target = await openTarget();
    await target.delete('jobs', { jobNum: 1 });
    const kept = await allRows(target);
    await target.close();

    await expect(copyState({ from: sourcePath, to: targetUrl })).rejects.toThrow(
      /target database at 127\.0\.0\.1:5432\/test is not empty: users \(2\), projects \(1\)/,
    );

    const again = await openTarget();
    expect(await allRows(again)).toEqual(kept);
    await again.close();
  });

  it('refuses a database whose tables hold rows before migrating anything', async () => {
    await admin.query(`create table "${schema}".users (id text)`);
    await admin.query(`insert into "${schema}".users values ('someone')`);

    await expect(copyState({ from: sourcePath, to: targetUrl })).rejects.toThrow(
      /is not empty: users \(1\)$/,
    );

    const { rows } = await admin.query(
      'select table_name from information_schema.tables where table_schema = $1',
      [schema],
    );
    expect(rows).toEqual([{ table_name: 'users' }]);
  });

  it('refuses a source that a running server holds', async () => {
    const running = await openStateStore({ serverDir });

    try {
      await expect(copyState({ from: sourcePath, to: targetUrl })).rejects.toBeInstanceOf(
        ReplicaLockError,
      );
    } finally {
      await running.close();
    }

    const { rows } = await admin.query(
      'select count(*)::int as n from information_schema.tables where table_schema = $1',
      [schema],
    );
    expect(rows[0].n).toBe(0);
  });

  it('refuses a file that is not a state of this server', async () => {
    const other = join(serverDir, 'other.db');
    const db = openSqliteDatabase(other);
    db.exec('create table users (id text)');
    db.close();

    await expect(copyState({ from: other, to: targetUrl })).rejects.toThrow(
      'is not a state written by this server',
    );
  });
});

describe('runCopyStateCommand', () => {
  function capture(env: Record<string, string | undefined> = {}) {
    const out: string[] = [];
    const err: string[] = [];
    const io: CommandIo = { stdout: (l) => out.push(l), stderr: (l) => err.push(l), env };
    return { io, out, err };
  }

  it('copies with --from and --to and reports each table', async () => {
    const { io, out, err } = capture();

    const argv = ['copy-state', '--from', sourcePath, `--to=${targetUrl}`];
    const code = await runCopyStateCommand(argv, io);

    expect(err).toEqual([]);
    expect(code).toBe(0);
    expect(out).toContain('  jobs: 6/6');
    expect(out[out.length - 1]).toBe('copied 17 rows in 15 tables; row counts match');
  });

  it('takes the defaults from DSTACK_SERVER_DIR and DSTACK_DATABASE_URL', async () => {
    const env = { DSTACK_SERVER_DIR: serverDir, DSTACK_DATABASE_URL: targetUrl };
    const { io, out } = capture(env);

    expect(await runCopyStateCommand([], io)).toBe(0);
    expect(out[0]).toBe(`copying ${sourcePath} to ${targetUrl}`);
  });

  it('exits 2 on bad arguments and 1 on a failed copy, without the password', async () => {
    const bad = capture();
    expect(await runCopyStateCommand(['--into', 'x'], bad.io)).toBe(2);
    expect(bad.err[0]).toContain('unknown argument --into');

    const failing = capture();
    const url = 'postgresql://dstack:hunter2@127.0.0.1:1/state';
    expect(await runCopyStateCommand(['--from', sourcePath, '--to', url], failing.io)).toBe(1);
    expect(failing.out[0]).toBe(
      `copying ${sourcePath} to postgresql://dstack:***@127.0.0.1:1/state`,
    );
    expect(failing.err).toHaveLength(1);
    expect(failing.err[0]).toMatch(
      /^copy-state failed: cannot connect to Postgres at 127\.0\.0\.1:1\/state/,
    );
    expect(failing.err.join()).not.toContain('hunter2');
  });
});
