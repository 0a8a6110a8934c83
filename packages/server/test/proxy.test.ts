import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { newId, startScheduler } from '@dstack/core';
import type { Scheduler } from '@dstack/core';
import { createFakeBackend } from '@dstack/core/testing';
import type { DstackServer } from '../src/index.js';
import { addUser, createTestServer, post } from './helpers.js';

let server: DstackServer;
let scheduler: Scheduler;
let upstream: ReturnType<typeof createHttpServer>;
let upstreamPort: number;

beforeEach(async () => {
  upstream = createHttpServer((req, res) => {
    res.setHeader('x-upstream', 'yes');
    res.end(`upstream saw ${req.method} ${req.url}`);
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  upstreamPort = (upstream.address() as AddressInfo).port;

  const backend = createFakeBackend();
  server = await createTestServer({ providers: [backend.provider] });
  const project = await server.ctx.store.findOne('projects', { where: { name: 'main' } });
  await server.ctx.store.insert('backends', {
    id: newId(), projectId: project!.id, type: 'fake', config: {}, auth: null,
    sourceConfig: {}, sourceAuth: null,
  });
  const fleet = await post(server, '/api/project/main/fleets/apply', server.adminToken, {
    plan: { spec: { configuration: { type: 'fleet', name: 'fl', nodes: '0..1',
      backends: ['fake'] } } },
    force: false,
  });
  expect(fleet.statusCode, fleet.body).toBe(200);
  scheduler = startScheduler(server.ctx, { maxIdleMillis: 20, intervals: {
    jobsSubmitted: 20, jobsProvisioning: 20, jobsRunning: 20, runsActive: 20 } });
});

afterEach(async () => {
  await scheduler.stop();
  await server.close();
  await new Promise((resolve) => upstream.close(resolve));
});

async function startService(name: string, auth: boolean): Promise<void> {
  const applied = await post(server, '/api/project/main/runs/apply', server.adminToken, {
    plan: {
      run_spec: {
        configuration: { type: 'service', name, commands: ['sleep'], port: upstreamPort, auth },
        ssh_key_pub: 'ssh-rsa AAA',
      },
    },
    force: false,
  });
  expect(applied.statusCode, applied.body).toBe(200);
  expect(applied.json().service.url).toBe(`/proxy/services/main/${name}/`);
  const deadline = Date.now() + 10_000;

  while (Date.now() < deadline) {
    const run = await post(server, '/api/project/main/runs/get', server.adminToken,
      { run_name: name });

    if (run.json().status === 'running') {
      return;
    }

    await new Promise((resolve) => setTimeout(resolve, 25));
  }

  const last = await post(server, '/api/project/main/runs/get', server.adminToken,
    { run_name: name });
  throw new Error(`service did not start: ${JSON.stringify(last.json().jobs[0].job_submissions)}`);
}

describe('service proxy', () => {
  it('forwards to the running replica with the path and query', async () => {
    await startService('open-svc', false);
    const response = await server.inject({
      method: 'GET', url: '/proxy/services/main/open-svc/a/b?x=1',
    });

    expect(response.statusCode).toBe(200);
    expect(response.body).toBe('upstream saw GET /a/b?x=1');
    expect(response.headers['x-upstream']).toBe('yes');
  });

  it('asks for a project member token when the service has auth', async () => {
    await startService('closed-svc', true);
    const anonymous = await server.inject({
      method: 'GET', url: '/proxy/services/main/closed-svc/',
    });
    const outsider = await addUser(server, 'outsider');
    const stranger = await server.inject({
      method: 'GET', url: '/proxy/services/main/closed-svc/',
      headers: { authorization: `Bearer ${outsider}` },
    });
    const member = await server.inject({
      method: 'GET', url: '/proxy/services/main/closed-svc/',
      headers: { authorization: `Bearer ${server.adminToken}` },
    });

    expect(anonymous.statusCode).toBe(401);
    expect(stranger.statusCode).toBe(403);
    expect(member.statusCode).toBe(200);
    expect(member.body).toBe('upstream saw GET /');
  });

  it('answers 400 resource_not_exists for an unknown service', async () => {
    const response = await server.inject({ method: 'GET', url: '/proxy/services/main/nothing/' });
    expect(response.statusCode).toBe(400);
    expect(response.json().detail[0].code).toBe('resource_not_exists');
  });
});
