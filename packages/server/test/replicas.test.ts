import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '@dstack/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  api,
  buildFastBackend,
  countBy,
  createTestDatabase,
  exitOf,
  fastOnlyConfig,
  readFastEvents,
  requireBuiltBin,
  startReplica,
  stopAllReplicas,
  waitFor,
} from './fixtures-replicas/replica-cluster.js';
import type { Replica, TestDatabase } from './fixtures-replicas/replica-cluster.js';
import { fastJobLine } from './fixtures-replicas/fast-backend.js';

// Three bin processes on one Postgres database, with the fast backend plugin: the issue's
// "many replicas" rows. Slow by nature (about two minutes on two cores), so one file.

const adminToken = 'replicas-admin-token-5b2f0c7e';
const jobMillis = 2000;
// Agent calls take a while, as on real instances, so rows stay leased while in hand.
const callMillis = 200;
let root: string;
let db: TestDatabase;
let stateDir: string;
let pluginPath: string;
let replicas: Replica[] = [];

function replicaEnv(): Record<string, string> {
  return {
    DSTACK_DATABASE_URL: db.url,
    DSTACK_SERVER_ADMIN_TOKEN: adminToken,
    DSTACK_SERVER_BACKEND_PLUGINS: pluginPath,
    DSTACK_TEST_FAST_BACKEND_DIR: stateDir,
    DSTACK_TEST_FAST_BACKEND_JOB_MILLIS: String(jobMillis),
    DSTACK_TEST_FAST_BACKEND_CALL_MILLIS: String(callMillis),
    DSTACK_DB_POOL_SIZE: '10',
    DSTACK_DB_MAX_OVERFLOW: '10',
    // INFO, so that the test can count the first-start work each replica did.
    DSTACK_SERVER_LOG_LEVEL: 'INFO',
  };
}

function startThree(): Promise<Replica[]> {
  return Promise.all(
    ['a', 'b', 'c'].map((name) =>
      startReplica({
        name,
        serverDir: join(root, `server-${name}`),
        env: replicaEnv(),
        config: fastOnlyConfig,
      }),
    ),
  );
}

/** Runs by status, straight from the shared database. */
async function runStatuses(prefix: string): Promise<Map<string, number>> {
  const rows = await db.query<{ status: string; count: string }>(
    'select status, count(*) as count from runs where run_name like $1 group by status',
    [`${prefix}-%`],
  );
  return new Map(rows.map((row) => [row.status, Number(row.count)]));
}

async function waitAllDone(prefix: string, total: number, timeoutMillis: number): Promise<void> {
  await waitFor(`${total} ${prefix} runs done`, async () => {
    const statuses = await runStatuses(prefix);
    const finished = ['done', 'failed', 'terminated'].reduce(
      (sum, status) => sum + (statuses.get(status) ?? 0), 0);
    return finished === total ? true : undefined;
  }, { timeoutMillis, intervalMillis: 1000 });
}

/** Applies `count` tasks named `<prefix>-<n>`, round-robin over the replicas, a few at a time. */
async function applyRuns(
  targets: readonly Replica[],
  prefix: string,
  count: number,
  fleetOf: (num: number) => string = () => 'fast-fleet',
  env: Record<string, string> = {},
) {
  const clients = targets.map((replica) =>
    createClient({ url: replica.url, token: replica.token, requestTimeoutMillis: 60_000 }));
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const num = next;
      next += 1;
      const client = clients[num % clients.length]!;
      await client.apply({
        type: 'task',
        name: `${prefix}-${num}`,
        backends: ['fast'],
        fleets: [fleetOf(num)],
        commands: ['echo fast'],
        env,
      });
    }
  };

  await Promise.all(Array.from({ length: 9 }, worker));
}

interface Lease {
  /** `<table>:<id>` */
  key: string;
  token: string;
  expiresAt: number;
}

/** Every lease held now on the pipelined tables. */
async function leases(): Promise<Lease[]> {
  const rows = await db.query<{ key: string; token: string; expires_at: Date }>(
    ['jobs', 'runs', 'instances', 'fleets'].map((table) =>
      `select '${table}:' || id as key, lock_token as token, lock_expires_at as expires_at ` +
        `from ${table} where lock_token is not null`).join(' union all '));
  return rows.map((row) => ({ key: row.key, token: row.token,
    expiresAt: row.expires_at.getTime() }));
}

interface JobRow {
  id: string;
  run_name: string;
  status: string;
  submission_num: string;
  termination_reason: string | null;
  instance_id: string | null;
  finished_at: Date | null;
}

async function jobsOf(prefix: string): Promise<JobRow[]> {
  return db.query<JobRow>(
    'select id, run_name, status, submission_num, termination_reason, instance_id, ' +
      'finished_at from jobs where run_name like $1',
    [`${prefix}-%`],
  );
}

/** Checks that every job of the round ran once to `done` on an instance made once. */
async function expectDoneOnce(prefix: string, total: number): Promise<void> {
  const jobs = await jobsOf(prefix);
  const events = await readFastEvents(stateDir);
  const starts = countBy(events, 'start');

  expect(jobs).toHaveLength(total);
  expect(new Set(jobs.map((job) => job.run_name)).size).toBe(total);
  expect(jobs.filter((job) => Number(job.submission_num) !== 0)).toEqual([]);
  expect(jobs.filter((job) => job.status !== 'done')).toEqual([]);
  expect(jobs.filter((job) => job.termination_reason !== 'done_by_runner')).toEqual([]);
  expect(jobs.filter((job) => starts.get(job.id) !== 1).map((job) => job.run_name)).toEqual([]);

  // Every instance the backend made is one the state knows, and none was made twice.
  const created = countBy(events, 'create');
  const instances = await db.query<{ id: string }>('select id from instances');
  const known = new Set(instances.map((row) => row.id));
  expect([...created.entries()].filter(([, times]) => times !== 1)).toEqual([]);
  expect([...created.keys()].filter((id) => !known.has(id))).toEqual([]);
  expect(jobs.filter((job) => job.instance_id === null || !created.has(job.instance_id)))
    .toEqual([]);

  // An instance has one block: a job starts on it only after the one before has finished.
  const startedAt = new Map(events.filter((event) => event.event === 'start')
    .map((event) => [event.id, event.at]));
  const byInstance = new Map<string, { start: number; end: number }[]>();

  for (const job of await db.query<JobRow>('select * from jobs')) {
    const spans = byInstance.get(job.instance_id ?? '') ?? [];
    spans.push({ start: startedAt.get(job.id) ?? 0, end: job.finished_at?.getTime() ?? 0 });
    byInstance.set(job.instance_id ?? '', spans);
  }

  const overlaps = [...byInstance.values()].flatMap((spans) => {
    spans.sort((a, b) => a.start - b.start);
    return spans.slice(1).filter((span, index) => span.start < spans[index]!.end);
  });
  expect(overlaps).toEqual([]);
}

beforeAll(async () => {
  requireBuiltBin();
  root = await mkdtemp(join(tmpdir(), 'dstack-replicas-'));
  stateDir = join(root, 'fast-state');
  pluginPath = await buildFastBackend(join(root, 'plugin'));
  db = await createTestDatabase('replicas');
}, 60_000);

afterAll(async () => {
  await stopAllReplicas();
  await db?.drop();
  await rm(root, { recursive: true, force: true });
}, 60_000);

describe('three replicas on one Postgres database', () => {
  it('start together on an empty database with one schema, one admin and one project', async () => {
    replicas = await startThree();

    expect(new Set(replicas.map((replica) => replica.token))).toEqual(new Set([adminToken]));
    expect(new Set(replicas.map((replica) => replica.url)).size).toBe(3);

    // Each migration and each piece of first-start work was done by one replica only.
    const logged = (message: string): number => replicas.reduce((sum, replica) =>
      sum + replica.output().split('\n').filter((line) =>
        line.includes(`"msg":"${message}"`)).length, 0);
    const migrations = await db.query<{ name: string }>('select name from kysely_migration');
    expect(migrations.length).toBeGreaterThan(0);
    expect(logged('state migration applied')).toBe(migrations.length);
    expect(logged('user created')).toBe(1);
    expect(logged('project created')).toBe(1);
    expect(logged('backend created')).toBe(1);
    const schemas = await db.query<{ schema: string }>(
      "select distinct table_schema as schema from information_schema.tables " +
        "where table_name = 'runs'");
    expect(schemas).toEqual([{ schema: 'public' }]);

    const users = await db.query<{ name: string }>('select name from users');
    const projects = await db.query<{ name: string }>('select name from projects');
    const members = await db.query<{ project_role: string }>('select project_role from members');
    expect(users).toEqual([{ name: 'admin' }]);
    expect(projects).toEqual([{ name: 'main' }]);
    expect(members).toEqual([{ project_role: 'admin' }]);
    // config.yml was applied by all three, and its backend was created once.
    const backends = await db.query<{ type: string }>('select type from backends');
    expect(backends).toEqual([{ type: 'fast' }]);

    for (const replica of replicas) {
      const listed = await api<{ username: string }[]>(replica, '/api/users/list');
      const projectList = await api<{ project_name: string }[]>(replica, '/api/projects/list');
      expect(listed.map((user) => user.username)).toEqual(['admin']);
      expect(projectList.map((project) => project.project_name)).toEqual(['main']);
      expect(await api<string[]>(replica, '/api/backends/list_types')).toContain('fast');
    }
  }, 90_000);

  it('run 300 tasks with every job provisioned once, started once and done', async () => {
    const client = createClient({ url: replicas[1]!.url, token: adminToken });
    await client.apply({ type: 'fleet', name: 'fast-fleet', nodes: '0..', backends: ['fast'] });

    const started = Date.now();
    await applyRuns(replicas, 'one', 300);
    await waitAllDone('one', 300, 150_000);
    const elapsedMillis = Date.now() - started;

    await expectDoneOnce('one', 300);
    const events = await readFastEvents(stateDir);
    const submits = countBy(events, 'submit');
    expect([...submits.values()].filter((times) => times !== 1)).toEqual([]);
    // The work was shared: each replica started some of the jobs.
    const pids = new Set(events.filter((event) => event.event === 'start').map((e) => e.pid));
    expect(pids).toEqual(new Set(replicas.map((replica) => replica.child.pid)));

    // The API of every replica tells the same story, and each log line was stored once.
    for (const replica of replicas) {
      const runs = await api<{ run_spec: { run_name: string }; status: string }[]>(
        replica, '/api/runs/list', { project_name: 'main', limit: 100 });
      expect(runs.length).toBe(100);
      expect(runs.every((run) => run.status === 'done')).toBe(true);
    }

    const jobs = await jobsOf('one');

    for (const runName of ['one-0', 'one-150', 'one-299']) {
      const jobId = jobs.find((job) => job.run_name === runName)!.id;
      const lines: string[] = [];

      for (const replica of replicas) {
        const polled = await api<{ logs: { message: string }[] }>(
          replica, '/api/project/main/logs/poll',
          { run_name: runName, job_submission_id: jobId, limit: 1000, diagnose: false });
        lines.push(...polled.logs.map((log) => Buffer.from(log.message, 'base64').toString()));
      }

      expect(lines.sort()).toEqual([1, 2, 3].map((num) => fastJobLine(runName, num)));
    }

    console.info(`300 runs on three replicas took ${elapsedMillis} ms`);
  }, 240_000);

  it('finish the work of a replica killed with SIGKILL, with nothing done twice', async () => {
    const [live1, live2, doomed] = replicas as [Replica, Replica, Replica];
    const before = (await readFastEvents(stateDir)).length;
    const total = 150;
    // Half reuse the idle instances of round one, half need new ones in a second fleet.
    const client = createClient({ url: live1.url, token: adminToken });
    await client.apply({ type: 'fleet', name: 'fast-next', nodes: '0..', backends: ['fast'] });
    await applyRuns([live1, live2, doomed], 'two', total,
      (num) => (num % 2 === 0 ? 'fast-fleet' : 'fast-next'));

    // Kill it mid-way: it has started jobs of this round, and rows are in the replicas' hands.
    await waitFor('the dead replica at work', async () => {
      const events = (await readFastEvents(stateDir)).slice(before);
      const startedByDoomed = events.filter((event) =>
        event.event === 'start' && event.pid === doomed.child.pid).length;
      return startedByDoomed >= 5 && (await leases()).length >= 9 ? true : undefined;
    }, { timeoutMillis: 60_000, intervalMillis: 50 });
    const doomedJobs = (await readFastEvents(stateDir)).slice(before)
      .filter((event) => event.event === 'start' && event.pid === doomed.child.pid)
      .map((event) => event.id);
    doomed.child.kill('SIGKILL');
    await exitOf(doomed.child);
    const orphaned = await db.query<{ id: string }>(
      "select id from jobs where id = any($1) and status <> 'done'", [doomedJobs]);
    const atKill = await runStatuses('two');
    const unfinished = total - (atKill.get('done') ?? 0);
    const leasedAtKill = await leases();
    expect(unfinished).toBeGreaterThan(0);
    // Jobs the dead replica started and never saw to the end: the others must finish them.
    expect(orphaned.length).toBeGreaterThan(0);

    // A live replica renews the leases in its hands every 10 s (a third of the 30 s lease).
    // Leases still unexpired, unrenewed and unchanged 12 s after the kill are the dead one's.
    await new Promise((resolve) => setTimeout(resolve, 12_000));
    const later = new Map((await leases()).map((lease) => [lease.key, lease]));
    const deadLeases = leasedAtKill.filter((lease) => {
      const now = later.get(lease.key);
      return now !== undefined && now.token === lease.token && now.expiresAt === lease.expiresAt &&
        now.expiresAt > Date.now();
    });
    expect(deadLeases.length).toBeGreaterThan(0);

    await waitAllDone('two', total, 150_000);
    await expectDoneOnce('two', total);
    const deadJobs = deadLeases.filter((lease) => lease.key.startsWith('jobs:'))
      .map((lease) => lease.key.slice('jobs:'.length));
    const deadJobsDone = await db.query<{ id: string }>(
      "select id from jobs where id = any($1) and status = 'done'", [deadJobs]);
    expect(deadJobsDone.length).toBe(deadJobs.length);

    // A job whose submit the dead replica made but never recorded is submitted again by
    // another replica; the agent contract makes that a no-op (the start counts stay 1).
    const resubmitted = [...countBy((await readFastEvents(stateDir)).slice(before), 'submit')
      .values()].filter((times) => times > 1).length;
    const madeEarlier = new Set((await readFastEvents(stateDir)).slice(0, before)
      .filter((event) => event.event === 'create').map((event) => event.id));
    const reused = (await jobsOf('two')).filter((job) => madeEarlier.has(job.instance_id ?? ''));
    console.info(`round two: ${resubmitted} jobs submitted twice, each started once; ` +
      `${reused.length} jobs ran on idle instances of round one`);
    console.info(`round two: ${unfinished} of ${total} runs unfinished, ` +
      `${orphaned.length} of its jobs running and ${leasedAtKill.length} rows leased when ` +
      `one replica died; ${deadLeases.length} of them were its own and were taken over`);
  }, 240_000);

  it('stop each run once when stops race each other and the scheduler', async () => {
    const live = replicas.filter((replica) => replica.child.exitCode === null &&
      replica.child.signalCode === null);
    const before = (await readFastEvents(stateDir)).length;
    const total = 30;
    expect(live).toHaveLength(2);
    await applyRuns(live, 'three', total, () => 'fast-fleet', { FAST_JOB_MILLIS: '600000' });
    await waitFor('every run of round three running', async () =>
      (await runStatuses('three')).get('running') === total ? true : undefined,
    { timeoutMillis: 60_000 });

    // Both replicas get a stop for every run at the same time.
    const names = Array.from({ length: total }, (_, num) => `three-${num}`);
    await Promise.all(live.flatMap((replica) => names.map((name) =>
      api(replica, '/api/project/main/runs/stop', { runs_names: [name], abort: false }))));
    await waitAllDone('three', total, 60_000);

    const jobs = await jobsOf('three');
    const events = (await readFastEvents(stateDir)).slice(before);
    const stops = countBy(events, 'stop');
    expect(await runStatuses('three')).toEqual(new Map([['terminated', total]]));
    expect(jobs.filter((job) => job.termination_reason !== 'terminated_by_user')).toEqual([]);
    expect(jobs.filter((job) => stops.get(job.id) !== 1).map((job) => job.run_name)).toEqual([]);
    expect([...countBy(events, 'start').values()]).toEqual(Array(total).fill(1));
  }, 120_000);
});
