import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createNetServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createLocalBackendProvider,
  ensureDefaultFleet,
  newId,
  startScheduler,
} from '@dstack/core';
import type { Scheduler } from '@dstack/core';
import {
  createSqliteStateStore,
  migrateToLatest,
  openSqliteDatabase,
} from '@dstack/storage-sqlite';
import type { DstackServer } from '../src/index.js';
import { createTestServer, post } from './helpers.js';

let server: DstackServer;
let scheduler: Scheduler;
let dir: string;

/** A port nothing listens on right now, from the kernel. */
async function freePort(): Promise<number> {
  const probe = createNetServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dstack-svc-update-'));
  // A real SQL store: job specs and deployment numbers round-trip through the database.
  const db = openSqliteDatabase(join(dir, 'state.db'));
  await migrateToLatest(db);
  server = await createTestServer({
    store: createSqliteStateStore({ db }),
    providers: [createLocalBackendProvider({ serverDir: dir })],
    settings: { serverDir: dir },
  });
  const project = await server.ctx.store.findOne('projects', { where: { name: 'main' } });
  await server.ctx.store.insert('backends', {
    id: newId(), projectId: project!.id, type: 'local', config: {}, auth: null,
    sourceConfig: {}, sourceAuth: null,
  });
  await ensureDefaultFleet(server.ctx, 'main');
  scheduler = startScheduler(server.ctx, {
    stopGraceMillis: 1000,
    maxIdleMillis: 50,
    intervals: { jobsSubmitted: 100, jobsProvisioning: 100, jobsRunning: 100,
      jobsTerminating: 100, runsActive: 100, runsRunning: 500, runsTerminating: 100 },
  });
});

afterAll(async () => {
  await post(server, '/api/project/main/runs/stop', server.adminToken,
    { runs_names: ['web'], abort: true });
  await getRunUntil((run) => ['terminated', 'failed'].includes(run.status), 30_000)
    .catch(() => undefined);
  await scheduler.stop();
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

type WireRun = Record<string, any>;

async function getRun(): Promise<WireRun> {
  const response = await post(server, '/api/project/main/runs/get', server.adminToken,
    { run_name: 'web' });
  expect(response.statusCode, response.body).toBe(200);
  return response.json() as WireRun;
}

async function getRunUntil(check: (run: WireRun) => boolean, timeoutMillis = 60_000) {
  const deadline = Date.now() + timeoutMillis;
  let run = await getRun();

  while (!check(run)) {
    if (Date.now() > deadline) {
      throw new Error(`run did not get there: ${JSON.stringify(run.jobs)}`);
    }

    await new Promise((resolve) => setTimeout(resolve, 100));
    run = await getRun();
  }

  return run;
}

/** A static HTTP server on `port` serving `root`, as a one-replica service. */
function webService(port: number, root: string): Record<string, unknown> {
  return {
    type: 'service',
    name: 'web',
    commands: ['exec python3 -m http.server "$WEB_PORT" --bind 127.0.0.1 --directory "$WEB_ROOT"'],
    port,
    env: { WEB_PORT: String(port), WEB_ROOT: root },
    auth: false,
  };
}

const runSpec = (configuration: Record<string, unknown>) =>
  ({ run_name: 'web', configuration, ssh_key_pub: 'ssh-rsa AAA' });

async function fetchVersion(): Promise<{ status: number; body: string }> {
  const response = await server.inject({ method: 'GET', url: '/proxy/services/main/web/v.txt' });
  return { status: response.statusCode, body: response.body };
}

const latestOf = (job: WireRun) => job.job_submissions[job.job_submissions.length - 1];

describe('re-applying a changed service over the API', () => {
  it('plans an update, rolls it out and keeps serving through the proxy', async () => {
    const [oldPort, newPort] = [await freePort(), await freePort()];
    const [oldRoot, newRoot] = [join(dir, 'old'), join(dir, 'new')];
    await mkdir(oldRoot);
    await mkdir(newRoot);
    await writeFile(join(oldRoot, 'v.txt'), 'one');
    await writeFile(join(newRoot, 'v.txt'), 'two');

    const created = await post(server, '/api/project/main/runs/apply', server.adminToken, {
      plan: { run_spec: runSpec(webService(oldPort, oldRoot)), current_resource: null },
      force: false,
    });
    expect(created.statusCode, created.body).toBe(200);
    await getRunUntil((run) => run.status === 'running');
    const first = await (async () => {
      const deadline = Date.now() + 20_000;

      for (;;) {
        const answer = await fetchVersion();

        if (answer.status === 200 || Date.now() > deadline) {
          return answer;
        }

        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
    expect(first).toEqual({ status: 200, body: 'one' });

    const changed = webService(newPort, newRoot);
    const planned = await post(server, '/api/project/main/runs/get_plan', server.adminToken,
      { run_spec: runSpec(changed) });
    expect(planned.statusCode, planned.body).toBe(200);
    expect(planned.json().action).toBe('update');
    expect(planned.json().current_resource.id).toBe(created.json().id);
    expect(planned.json().current_resource.deployment_num).toBe(0);

    const applied = await post(server, '/api/project/main/runs/apply', server.adminToken, {
      plan: { run_spec: runSpec(changed), current_resource: planned.json().current_resource },
      force: false,
    });
    expect(applied.statusCode, applied.body).toBe(200);
    expect([applied.json().id, applied.json().deployment_num])
      .toEqual([created.json().id, 1]);

    // Ask through the proxy all along the rollout; every answer must come from a replica.
    const answers: { status: number; body: string }[] = [];
    const rolled = (run: WireRun) => run.jobs.length === 2 &&
      latestOf(run.jobs[0]).status === 'terminated' && latestOf(run.jobs[1]).status === 'running';
    const deadline = Date.now() + 60_000;
    let run = await getRun();

    while (!rolled(run)) {
      expect(Date.now(), JSON.stringify(run.jobs)).toBeLessThan(deadline);
      answers.push(await fetchVersion());
      await new Promise((resolve) => setTimeout(resolve, 50));
      run = await getRun();
      expect(run.status).toBe('running');
    }

    answers.push(await fetchVersion());
    expect(answers.filter((answer) => answer.status !== 200)).toEqual([]);
    expect(answers.some((answer) => answer.body === 'one')).toBe(true);
    expect(answers[answers.length - 1]).toEqual({ status: 200, body: 'two' });

    expect(run.deployment_num).toBe(1);
    expect(run.run_spec.configuration.env.WEB_PORT).toBe(String(newPort));
    expect(run.jobs.map((job: WireRun) => [
      job.job_spec.replica_num, job.job_spec.service_port, latestOf(job).deployment_num,
      latestOf(job).status, latestOf(job).termination_reason,
    ])).toEqual([
      [0, oldPort, 0, 'terminated', 'scaled_down'],
      [1, newPort, 1, 'running', null],
    ]);
    expect(await fetchVersion()).toEqual({ status: 200, body: 'two' });

    // A change that leaves the job specs alone moves the replica in place: no restart.
    const serving = latestOf(run.jobs[1]);
    const reprioritised = { ...changed, priority: 5 };
    const again = await post(server, '/api/project/main/runs/get_plan', server.adminToken,
      { run_spec: runSpec(reprioritised) });
    expect(again.json().action).toBe('update');
    const moved = await post(server, '/api/project/main/runs/apply', server.adminToken, {
      plan: { run_spec: runSpec(reprioritised), current_resource: again.json().current_resource },
      force: false,
    });
    expect(moved.json().deployment_num).toBe(2);
    const inPlace = await getRunUntil((r) => latestOf(r.jobs[1]).deployment_num === 2);

    expect(inPlace.jobs).toHaveLength(2);
    expect([latestOf(inPlace.jobs[1]).id, latestOf(inPlace.jobs[1]).status])
      .toEqual([serving.id, 'running']);
    expect(inPlace.run_spec.configuration.priority).toBe(5);
    expect(await fetchVersion()).toEqual({ status: 200, body: 'two' });

    // The same port again: local jobs share the host's ports, so the serving replica stops
    // before its successor starts (a short gap) instead of a surge replica failing to bind.
    const thirdRoot = join(dir, 'three');
    await mkdir(thirdRoot);
    await writeFile(join(thirdRoot, 'v.txt'), 'three');
    const samePort = { ...webService(newPort, thirdRoot), priority: 5 };
    const third = await post(server, '/api/project/main/runs/get_plan', server.adminToken,
      { run_spec: runSpec(samePort) });
    const replaced = await post(server, '/api/project/main/runs/apply', server.adminToken, {
      plan: { run_spec: runSpec(samePort), current_resource: third.json().current_resource },
      force: false,
    });
    expect(replaced.json().deployment_num).toBe(3);
    const serves = (r: WireRun) => r.jobs.filter((job: WireRun) =>
      latestOf(job).status === 'running' && latestOf(job).deployment_num === 3);
    const settled = await getRunUntil((r) => serves(r).length === 1 &&
      r.jobs.every((job: WireRun) => latestOf(job).status !== 'terminating'));
    let answer = await fetchVersion();
    const answerDeadline = Date.now() + 20_000;

    while (answer.body !== 'three' && Date.now() < answerDeadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      answer = await fetchVersion();
    }

    expect(answer).toEqual({ status: 200, body: 'three' });
    expect(settled.status).toBe('running');
    // The replica of deployment 2 went first; an ended replica number came back for 3.
    expect(settled.jobs.map((job: WireRun) => [
      job.job_spec.replica_num, latestOf(job).deployment_num, latestOf(job).status,
    ])).toEqual([
      [0, 3, 'running'],
      [1, 2, 'terminated'],
    ]);
    expect(latestOf(settled.jobs[1]).termination_reason).toBe('scaled_down');
  }, 180_000);
});
