import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
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

// What one runs/list call costs with many active runs, without the scheduler's load: the
// statements it runs, their query plans and its time. Rows are cloned from one real run
// brought to `running` by the scheduler, so seeding 10,000 takes seconds, not minutes.

const activeRuns = Number(process.env.BENCH_RUNS ?? 10_000);
const listCalls = Number(process.env.BENCH_LIST_CALLS ?? 300);

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

it(`profiles runs/list over ${activeRuns} active runs`, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dstack-bench-'));
  const db = openSqliteDatabase(join(dir, 'bench.db'));
  await migrateToLatest(db);
  const store = createSqliteStateStore({ db });
  const backend = createFakeBackend();
  const server = await createServer({
    store,
    logStore: createMemoryLogStore(),
    cipher: createCipher(),
    providers: [backend.provider],
    startupHooks: [],
  });
  const project = await store.findOne('projects', { where: { name: 'main' } });
  await store.insert('backends', {
    id: newId(), projectId: project!.id, type: 'fake', config: {}, auth: null,
    sourceConfig: {}, sourceAuth: null,
  });
  const auth = { authorization: `Bearer ${server.adminToken}` };
  const post = (url: string, payload: object) =>
    server.inject({ method: 'POST', url, headers: auth, payload });
  await post('/api/project/main/fleets/apply', {
    plan: { spec: { configuration: { type: 'fleet', name: 'bench', nodes: '0..',
      backends: ['fake'] } } },
    force: false,
  });
  const scheduler = startScheduler(server.ctx);
  await post('/api/project/main/runs/apply', {
    plan: { run_spec: { run_name: 'seed', configuration: { type: 'task', commands: ['sleep'] },
      ssh_key_pub: 'ssh-rsa AAA' } },
    force: false,
  });

  while ((await store.findOne('jobs', { where: { runName: 'seed' } }))?.status !== 'running') {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }

  await scheduler.stop();
  const run = (await store.findOne('runs', { where: { runName: 'seed' } }))!;
  const job = (await store.findOne('jobs', { where: { runId: run.id } }))!;
  const instance = (await store.get('instances', job.instanceId!))!;

  for (let i = 0; i < activeRuns; i += 1000) {
    await store.transaction(async (tx) => {
      for (let k = i; k < Math.min(activeRuns, i + 1000); k += 1) {
        const runId = newId();
        const instanceId = newId();
        const runName = `load-${k}`;
        await tx.insert('runs', { ...run, id: runId, runName, submittedAt: run.submittedAt + k,
          runSpec: { ...(run.runSpec as object), run_name: runName } });
        await tx.insert('instances', { ...instance, id: instanceId, name: `bench-${k + 1}`,
          instanceNum: k + 1 });
        await tx.insert('jobs', { ...job, id: newId(), runId, runName, instanceId });
      }
    });
  }

  const seen = new Map<string, number>();
  const prepare = db.prepare.bind(db);
  db.prepare = ((source: string) => {
    seen.set(source, (seen.get(source) ?? 0) + 1);
    return prepare(source);
  }) as typeof db.prepare;
  const response = await post('/api/runs/list', { limit: 100 });
  db.prepare = prepare;
  expect(response.statusCode).toBe(200);
  expect(response.json()).toHaveLength(100);
  const plans = [...seen].map(([source, times]) => {
    const explain = prepare(`explain query plan ${source}`);
    const params = Array.from({ length: (source.match(/\?/g) ?? []).length }, () => 'x');
    const plan = explain.all(...params).map((row) => (row as { detail: string }).detail);
    return { times, source: source.slice(0, 200), plan };
  });

  const measure = async (payload: object) => {
    const millis: number[] = [];

    for (let i = 0; i < listCalls; i += 1) {
      const started = performance.now();
      await post('/api/runs/list', payload);
      millis.push(performance.now() - started);
    }

    return {
      medianMillis: Math.round(percentile(millis, 50) * 10) / 10,
      p99Millis: Math.round(percentile(millis, 99) * 10) / 10,
    };
  };
  const cpuProfile = process.env.BENCH_CPU_PROFILE ?? null;

  if (cpuProfile !== null) {
    const { Session } = await import('node:inspector/promises');
    const { writeFile } = await import('node:fs/promises');
    const session = new Session();
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.start');
    await measure({ limit: 100 });
    const { profile } = await session.post('Profiler.stop');
    await writeFile(cpuProfile, JSON.stringify(profile));
    session.disconnect();
  }

  const report = {
    activeRuns,
    responseBytes: response.body.length,
    statements: plans,
    list100: await measure({ limit: 100 }),
    list100WithoutJobs: await measure({ limit: 100, include_jobs: false }),
    list100OneSubmission: await measure({ limit: 100, job_submissions_limit: 1 }),
  };

  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  const underLoadSeconds = Number(process.env.BENCH_UNDER_LOAD_SECONDS ?? 0);

  if (underLoadSeconds > 0) {
    // The same calls with the scheduler visiting the cloned rows: which statements it spends
    // its time in, and how long list calls wait behind it.
    const spent = new Map<string, { count: number; millis: number; args?: unknown[] }>();
    db.prepare = ((source: string) => {
      const statement = prepare(source);
      const entry = spent.get(source) ?? { count: 0, millis: 0 };
      spent.set(source, entry);

      for (const method of ['all', 'get', 'run'] as const) {
        const original = statement[method].bind(statement) as (...args: unknown[]) => unknown;
        (statement as unknown as Record<string, unknown>)[method] = (...args: unknown[]) => {
          const started = performance.now();
          entry.args ??= args;

          try {
            return original(...args);
          } finally {
            entry.count += 1;
            entry.millis += performance.now() - started;
          }
        };
      }

      return statement;
    }) as typeof db.prepare;
    const loaded = startScheduler(server.ctx);
    const millis: number[] = [];
    const until = performance.now() + underLoadSeconds * 1000;

    while (performance.now() < until) {
      const started = performance.now();
      await post('/api/runs/list', { limit: 100 });
      millis.push(performance.now() - started);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }

    await loaded.stop();
    db.prepare = prepare;
    const top = [...spent].sort((a, b) => b[1].millis - a[1].millis).slice(0, 12)
      .map(([source, { count, millis: spentMillis, args }]) => ({
        count,
        millis: Math.round(spentMillis),
        source: source.slice(0, 600),
        plan: source.startsWith('select')
          ? prepare(`explain query plan ${source}`).all(...(args ?? []))
            .map((row) => (row as { detail: string }).detail)
          : [],
      }));
    process.stdout.write(`${JSON.stringify({
      listCalls: millis.length,
      medianMillis: Math.round(percentile(millis, 50) * 10) / 10,
      p99Millis: Math.round(percentile(millis, 99) * 10) / 10,
      running: await store.count('jobs', { status: 'running' }),
      top,
    }, null, 2)}\n`);
  }

  await server.close();
  await store.close();
  await rm(dir, { recursive: true, force: true });
});
