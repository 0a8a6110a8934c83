import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import {
  createLocalBackendProvider,
  ensureDefaultFleet,
  newId,
  startScheduler,
} from '@dstack/core';
import type { Scheduler } from '@dstack/core';
import type { DstackServer } from '../src/index.js';
import { createTestServer, post } from './helpers.js';

const fixtures = join(import.meta.dirname, '../../../../shared/fixtures/configs');
let server: DstackServer;
let scheduler: Scheduler;
let dir: string;

async function fixture(name: string): Promise<Record<string, unknown>> {
  return parse(await readFile(join(fixtures, `${name}.dstack.yml`), 'utf8'));
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dstack-local-'));
  server = await createTestServer({
    providers: [createLocalBackendProvider({ serverDir: dir })],
    settings: { serverDir: dir },
  });
  const project = await server.ctx.store.findOne('projects', { where: { name: 'main' } });
  await server.ctx.store.insert('backends', {
    id: newId(), projectId: project!.id, type: 'local', config: {}, auth: null,
    sourceConfig: {}, sourceAuth: null,
  });
  await ensureDefaultFleet(server.ctx, 'main');
  scheduler = startScheduler(server.ctx, { stopGraceMillis: 1000 });
});

afterAll(async () => {
  await scheduler.stop();
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

describe('task-hello on the local backend, in process', () => {
  it('runs to done with its greeting in the log', async () => {
    const configuration = await fixture('task-hello');
    const applied = await post(server, '/api/project/main/runs/apply', server.adminToken, {
      plan: { run_spec: { configuration, ssh_key_pub: 'ssh-rsa AAA' }, current_resource: null },
      force: false,
    });
    expect(applied.statusCode, applied.body).toBe(200);
    let run: Record<string, any> = {};
    const deadline = Date.now() + 20_000;

    while (Date.now() < deadline) {
      run = (await post(server, '/api/project/main/runs/get', server.adminToken,
        { run_name: 'hello' })).json() as Record<string, any>;

      if (run.jobs === undefined) {
        throw new Error(JSON.stringify(run));
      }

      if (['done', 'failed', 'terminated'].includes(run.status)) {
        break;
      }

      await new Promise((resolve) => setTimeout(resolve, 100));
    }

    const submission = run.jobs[0].job_submissions[0];
    const logs = await post(server, '/api/project/main/logs/poll', server.adminToken, {
      run_name: 'hello', job_submission_id: submission.id, limit: 1000,
    });
    const text = (logs.json() as { logs: { message: string }[] }).logs
      .map((event) => Buffer.from(event.message, 'base64').toString()).join('');
    const runner = await post(server, '/api/project/main/logs/poll', server.adminToken, {
      run_name: 'hello', job_submission_id: submission.id, limit: 1000, diagnose: true,
    });
    const runnerText = (runner.json() as { logs: { message: string }[] }).logs
      .map((event) => Buffer.from(event.message, 'base64').toString()).join('');

    expect(run.status, `${JSON.stringify(submission)}\n${runnerText}`).toBe('done');
    expect(text).toContain('hello from node 0 of 1');
    expect(text).toContain('line 3');
    expect(text).toContain('to stderr');
  });
});
