import { appendFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { expect, it } from 'vitest';
import { createCipher, createMemoryLogStore, newId, startScheduler } from '@dstack/core';
import { createFakeBackend } from '@dstack/core/testing';
import { createServer } from '@dstack/server';
import {
  createSqliteStateStore,
  migrateToLatest,
  openSqliteDatabase,
} from '@dstack/storage-sqlite';
import { stateMigrations } from '@dstack/storage-sql';

// 10,000 active runs on one SQLite replica with the in-process fake backend: how fast a
// new run reaches `running` under that load, how fast runs/list answers, how much memory.

const activeRuns = Number(process.env.BENCH_RUNS ?? 10_000);
const probes = Number(process.env.BENCH_PROBES ?? 50);
const listCalls = Number(process.env.BENCH_LIST_CALLS ?? 300);
const progressFile = process.env.BENCH_PROGRESS_FILE ?? null;
// An older schema to compare against, e.g. `0003` for the one before the hot-query indexes.
const schemaUpTo = process.env.BENCH_SCHEMA_UP_TO ?? null;
const migrations = Object.fromEntries(
  Object.entries(stateMigrations).filter(
    ([name]) => schemaUpTo === null || name.slice(0, schemaUpTo.length) <= schemaUpTo,
  ),
);

/** Progress goes to a file: the test runner shows a test's output only when it ends. */
function progress(line: string): void {
  if (progressFile !== null) {
    appendFileSync(progressFile, `${new Date().toISOString()} ${line}\n`);
  }
}

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

it(`keeps ${activeRuns} active runs moving on SQLite`, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dstack-bench-'));
  const db = openSqliteDatabase(join(dir, 'bench.db'));
  await migrateToLatest(db, { migrations });
  const store = createSqliteStateStore({ db });
  const backend = createFakeBackend();
  const server = await createServer({
    store,
    logStore: createMemoryLogStore(),
    cipher: createCipher(),
    providers: [backend.provider],
    startupHooks: [],
  });
  const { ctx } = server;
  const project = await store.findOne('projects', { where: { name: 'main' } });
  await store.insert('backends', {
    id: newId(), projectId: project!.id, type: 'fake', config: {}, auth: null,
    sourceConfig: {}, sourceAuth: null,
  });
  const auth = { authorization: `Bearer ${server.adminToken}` };
  const post = (url: string, payload: object) =>
    server.inject({ method: 'POST', url, headers: auth, payload });
  const fleet = await post('/api/project/main/fleets/apply', {
    plan: { spec: { configuration: { type: 'fleet', name: 'bench', nodes: '0..',
      backends: ['fake'] } } },
    force: false,
  });
  expect(fleet.statusCode, fleet.body).toBe(200);
  const scheduler = startScheduler(ctx);
  const apply = (name: string) =>
    post('/api/project/main/runs/apply', {
      plan: { run_spec: { run_name: name, configuration: { type: 'task', commands: ['sleep'] },
        ssh_key_pub: 'ssh-rsa AAA' } },
      force: false,
    });

  const loadStart = performance.now();

  for (let i = 0; i < activeRuns; i += 1) {
    const response = await apply(`load-${i}`);

    if (response.statusCode !== 200) {
      throw new Error(response.body);
    }

    if (i % 500 === 0) {
      const jobs = await store.count('jobs', { status: 'running' });
      progress(`applied ${i}, running ${jobs}, ${Math.round(performance.now() - loadStart)} ms`);
    }
  }

  const appliedMillis = performance.now() - loadStart;
  let running = 0;

  while (running < activeRuns) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    running = await store.count('jobs', { status: 'running' });
    const failed = await store.count('jobs', { status: { in: ['failed', 'terminating'] } });
    progress(`running ${running}/${activeRuns}, failed ${failed}`);

    if (failed > 0) {
      throw new Error(`${failed} jobs failed to start`);
    }
  }

  const allRunningMillis = performance.now() - loadStart;
  const latencies: number[] = [];

  for (let i = 0; i < probes; i += 1) {
    const started = performance.now();
    await apply(`probe-${i}`);

    for (;;) {
      const job = await store.findOne('jobs', { where: { runName: `probe-${i}` } });

      if (job?.status === 'running') {
        break;
      }

      await new Promise((resolve) => setTimeout(resolve, 10));
    }

    latencies.push(performance.now() - started);
  }

  const listMillis: number[] = [];

  for (let i = 0; i < listCalls; i += 1) {
    const started = performance.now();
    const response = await post('/api/runs/list', { limit: 100 });
    listMillis.push(performance.now() - started);
    expect(response.statusCode).toBe(200);
  }

  const memory = process.memoryUsage();
  const report = {
    machine: `${cpus().length} x ${cpus()[0]?.model}, ${Math.round(totalmem() / 2 ** 30)} GiB`,
    activeRuns,
    schema: Object.keys(migrations).at(-1),
    applyAllSeconds: Math.round(appliedMillis / 100) / 10,
    allRunningSeconds: Math.round(allRunningMillis / 100) / 10,
    submittedToRunningMedianMillis: Math.round(percentile(latencies, 50)),
    submittedToRunningP90Millis: Math.round(percentile(latencies, 90)),
    runsListMedianMillis: Math.round(percentile(listMillis, 50) * 10) / 10,
    runsListP99Millis: Math.round(percentile(listMillis, 99) * 10) / 10,
    rssMiB: Math.round(memory.rss / 2 ** 20),
    heapUsedMiB: Math.round(memory.heapUsed / 2 ** 20),
  };

  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  await scheduler.stop();
  await server.close();
  await store.close();
  await rm(dir, { recursive: true, force: true });
});
