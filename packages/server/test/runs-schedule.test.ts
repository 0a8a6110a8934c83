import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createCipher, createMemoryLogStore, newId, startScheduler } from '@dstack/core';
import type { Scheduler, StateStore } from '@dstack/core';
import { createFakeBackend } from '@dstack/core/testing';
import { openPostgresPool } from '@dstack/storage-postgres';
import { openStateStore } from '../src/compose/state-store.js';
import { createServer } from '../src/create-server.js';
import type { DstackServer } from '../src/create-server.js';
import { post } from './helpers.js';

const hourMillis = 3_600_000;
const postgresBase =
  process.env.DSTACK_TEST_POSTGRES_URL ?? 'postgresql://postgres@127.0.0.1:5432/test';
const admin = openPostgresPool({ connectionString: postgresBase, max: 2 });
const schemas: string[] = [];

const fastIntervals = {
  jobsSubmitted: 20, jobsProvisioning: 20, jobsRunning: 20, jobsTerminating: 20, runsActive: 20,
  runsRunning: 20, runsTerminating: 20, instancesPending: 20, instancesActive: 20, fleets: 20,
};

let serverDir: string | undefined;
let store: StateStore | undefined;
let server: DstackServer | undefined;
let scheduler: Scheduler | undefined;
let offset = 0;

afterEach(async () => {
  await scheduler?.stop();
  await server?.close();
  await store?.close();
  scheduler = undefined;
  server = undefined;
  store = undefined;

  if (serverDir !== undefined) {
    rmSync(serverDir, { recursive: true, force: true });
    serverDir = undefined;
  }
});

afterAll(async () => {
  for (const schema of schemas) {
    await admin.query(`drop schema if exists "${schema}" cascade`);
  }

  await admin.end();
});

/** A schema of the test's own, so every test starts from an empty database. */
async function schemaUrl(): Promise<string> {
  const schema = `runs_schedule_${randomBytes(4).toString('hex')}`;
  await admin.query(`create schema "${schema}"`);
  schemas.push(schema);
  const url = new URL(postgresBase);
  url.searchParams.set('options', `-c search_path=${schema}`);
  return url.toString();
}

/** A server on a real store whose clock the test moves, with the fake backend in `main`. */
async function start(kind: 'sqlite' | 'postgres'): Promise<DstackServer> {
  offset = 0;
  serverDir = mkdtempSync(join(tmpdir(), 'runs-schedule-'));
  store = await openStateStore({
    serverDir, ...(kind === 'postgres' ? { databaseUrl: await schemaUrl() } : {}),
  });
  const backend = createFakeBackend();
  server = await createServer({
    store,
    logStore: createMemoryLogStore(),
    cipher: createCipher(),
    startupHooks: [],
    providers: [backend.provider],
    settings: { serverDir },
    now: () => Date.now() + offset,
  });
  const project = await store.findOne('projects', { where: { name: 'main' } });
  await store.insert('backends', {
    id: newId(), projectId: project!.id, type: 'fake', config: {}, auth: null,
    sourceConfig: {}, sourceAuth: null,
  });

  return server;
}

const call = (path: string, body: unknown) =>
  post(server!, `/api/project/main/${path}`, server!.adminToken, body);

const runSpec = (name: string, schedule: unknown) => ({
  run_name: name,
  configuration: { type: 'task', name, commands: ['echo hi'], schedule },
  ssh_key_pub: 'ssh-rsa AAAA test',
});

async function getRun(name: string): Promise<Record<string, any>> {
  const response = await call('runs/get', { run_name: name });
  expect(response.statusCode, response.body).toBe(200);
  return response.json() as Record<string, any>;
}

async function waitFor(name: string, check: (run: Record<string, any>) => boolean) {
  const deadline = Date.now() + 15_000;

  for (;;) {
    const run = await getRun(name);

    if (check(run)) {
      return run;
    }

    if (Date.now() > deadline) {
      throw new Error(`run ${name} is ${run.status}, next ${run.next_triggered_at}`);
    }

    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function waitForStored(runId: string, nextTriggeredAt: number): Promise<void> {
  const deadline = Date.now() + 15_000;

  for (;;) {
    const run = await store!.get('runs', runId);

    if (run?.status === 'pending' && run.nextTriggeredAt === nextTriggeredAt) {
      return;
    }

    if (Date.now() > deadline) {
      throw new Error(`run is ${run?.status}, next ${run?.nextTriggeredAt}`);
    }

    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** The next whole hour after `millis`, as the original writes datetimes. */
function nextHourWire(millis: number): string {
  const next = Math.floor(millis / hourMillis) * hourMillis + hourMillis;
  return `${new Date(next).toISOString().slice(0, 19)}Z`;
}

describe.each(['sqlite', 'postgres'] as const)('scheduled runs on %s', (kind) => {
  it('applies pending with next_triggered_at, runs at its time, waits again', async () => {
    await start(kind);
    const fleet = await call('fleets/apply', {
      plan: {
        spec: { configuration: { type: 'fleet', name: 'fakes', nodes: '0..2',
          backends: ['fake'] } },
        current_resource: null,
      },
      force: false,
    });
    expect(fleet.statusCode, fleet.body).toBe(200);

    const plan = await call('runs/get_plan', {
      run_spec: runSpec('nightly', { cron: '0 * * * *' }),
    });
    expect(plan.statusCode, plan.body).toBe(200);
    expect(plan.json().run_spec.configuration.schedule).toEqual({ cron: '0 * * * *' });
    expect(plan.json().effective_run_spec.configuration.schedule).toEqual({
      cron: ['0 * * * *'],
    });

    const expected = nextHourWire(Date.now() + offset);
    const applied = await call('runs/apply', {
      plan: { run_spec: runSpec('nightly', { cron: '0 * * * *' }), current_resource: null },
      force: false,
    });
    expect(applied.statusCode, applied.body).toBe(200);
    expect(applied.json()).toMatchObject({
      status: 'pending', status_message: 'pending', jobs: [], latest_job_submission: null,
      termination_reason: null, next_triggered_at: expected,
    });
    expect(applied.json().next_triggered_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:00:00Z$/);

    const listed = await post(server!, '/api/runs/list', server!.adminToken, {
      project_name: 'main',
    });
    expect(listed.json()).toMatchObject([
      { run_spec: { run_name: 'nightly' }, status: 'pending', next_triggered_at: expected },
    ]);

    scheduler = startScheduler(server!.ctx, {
      intervals: fastIntervals, maxIdleMillis: 20, stopGraceMillis: 200,
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await getRun('nightly')).toMatchObject({ status: 'pending', jobs: [] });

    offset = Date.parse(expected) - Date.now() + 1000;
    const later = nextHourWire(Date.parse(expected));
    // The stored trigger time moves on only when the run goes back to pending.
    await waitForStored(applied.json().id, Date.parse(later));
    const again = await getRun('nightly');

    expect(again).toMatchObject({ status: 'pending', next_triggered_at: later });
    expect(again.jobs[0].job_submissions.map((s: any) => [s.submission_num, s.status])).toEqual([
      [0, 'done'],
    ]);
    expect(again.fleet).toBeNull();
    expect(again.termination_reason).toBe('all_jobs_done');

    const refused = await call('runs/delete', { runs_names: ['nightly'] });
    expect(refused.statusCode).toBe(400);
    expect(refused.json().detail[0].msg).toBe("Cannot delete active runs: ['nightly']");

    expect((await call('runs/stop', { runs_names: ['nightly'], abort: false })).statusCode)
      .toBe(200);
    const stopped = await waitFor('nightly', (run) => run.status === 'terminated');
    expect(stopped).toMatchObject({
      termination_reason: 'stopped_by_user', next_triggered_at: null,
    });
    expect((await call('runs/delete', { runs_names: ['nightly'] })).statusCode).toBe(200);
  });

  it('answers a bad cron expression with a 400 naming the field', async () => {
    await start(kind);

    for (const path of ['runs/get_plan', 'runs/apply']) {
      const spec = runSpec('bad-cron', { cron: ['0 9 * * *', '0 9 * * 7'] });
      const body = path === 'runs/apply'
        ? { plan: { run_spec: spec, current_resource: null }, force: false }
        : { run_spec: spec };
      const response = await call(path, body);

      expect(response.statusCode, response.body).toBe(400);
      expect(response.json()).toEqual({
        detail: [{
          msg: "configuration.schedule.cron.1: invalid cron expression '0 9 * * 7': " +
            "bad day of week '7'",
          code: 'error',
          fields: ['configuration', 'schedule', 'cron', '1'],
        }],
      });
    }

    expect(await store!.count('runs')).toBe(0);
  });
});
