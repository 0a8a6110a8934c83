/**
 * End to end through the HTTP API: the server's own composition (`createServer`) with this
 * provider registered, the scheduler running, and two real sshd hosts.
 *
 * `@dstack/server` comes from the workspace sources through the test alias; it is not a
 * declared dependency because the server already depends on this package.
 */
import { readFileSync } from 'node:fs';
import type { Cipher, LogStore, StateStore } from '@dstack/core';
import {
  createCipher,
  createMemoryLogStore,
  createMemoryStateStore,
  startScheduler,
} from '@dstack/core';
import type { Scheduler } from '@dstack/core';
import { createServer } from '@dstack/server';
import type { DstackServer } from '@dstack/server';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createInstanceKeyResolver, createSshBackendProvider } from '../src/index.js';
import type { SshBackendProvider } from '../src/index.js';
import { generateKeyPair, startSshd } from './sshd-harness.js';
import type { SshdHost } from './sshd-harness.js';

const fixtures = new URL('../../../../shared/fixtures/configs/', import.meta.url);
const intervals = {
  jobsSubmitted: 50,
  jobsProvisioning: 50,
  jobsRunning: 100,
  jobsTerminating: 50,
  runsActive: 50,
  runsTerminating: 50,
  instancesPending: 100,
  instancesActive: 200,
  fleets: 200,
};
const helloLog = 'hello from node 0 of 1\nline 1\nline 2\nline 3\nto stderr\n';

const userKey = generateKeyPair('user@laptop');
const hosts: SshdHost[] = [];
const originalKeys: string[] = [];
let store: StateStore;
let logStore: LogStore;
let cipher: Cipher;
let server: DstackServer | undefined;
let scheduler: Scheduler | undefined;
let provider: SshBackendProvider | undefined;
let token = '';

type Json = Record<string, any>;

function fixture(name: string): Json {
  return parse(readFileSync(new URL(name, fixtures), 'utf8')) as Json;
}

async function post(path: string, body: unknown): Promise<Json> {
  const response = await server!.inject({
    method: 'POST',
    url: `/api/project/main/${path}`,
    headers: { authorization: `Bearer ${token}` },
    payload: body as object,
  });
  if (response.statusCode !== 200) {
    throw new Error(`${path}: ${response.statusCode} ${response.body}`);
  }

  return response.json() as Json;
}

async function until<T>(check: () => Promise<T | undefined>, timeoutMillis = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMillis;
  for (;;) {
    const value = await check();
    if (value !== undefined) {
      return value;
    }

    if (Date.now() > deadline) {
      throw new Error('timed out waiting');
    }

    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Starts (or restarts) the server on the same stores, as a process restart would. */
async function startServer(): Promise<void> {
  provider = createSshBackendProvider({
    resolveKeys: createInstanceKeyResolver({ store, cipher }),
  });
  server = await createServer({
    store,
    logStore,
    cipher,
    providers: [provider],
    startupHooks: [],
    settings: { serverDir: '/nonexistent' },
  });
  token = server.adminToken;
  scheduler = startScheduler(server.ctx, { intervals, stopGraceMillis: 1000 });
}

async function stopServer(): Promise<void> {
  await scheduler?.stop();
  await server?.close();
  await provider?.close();
}

async function applyFleet(placement: string): Promise<Json> {
  const configuration = fixture('fleet-ssh.dstack.yml');
  const [first, second] = hosts;
  configuration.placement = placement;
  configuration.ssh_config = {
    ...configuration.ssh_config,
    user: 'root',
    port: first.port,
    identity_file: null,
    ssh_key: { public: userKey.publicKey, private: userKey.privateKey },
    hosts: [first.address, { hostname: second.address, port: second.port }],
  };
  const spec = { configuration, profile: {} };
  const plan = await post('fleets/get_plan', { spec });

  return post('fleets/apply', {
    plan: { spec, current_resource: plan.current_resource },
    force: false,
  });
}

async function runToEnd(configurationFile: string, runName: string): Promise<Json> {
  const configuration = { ...fixture(configurationFile), name: runName };
  await post('runs/apply', {
    plan: { run_spec: { configuration, ssh_key_pub: userKey.publicKey }, current_resource: null },
    force: false,
  });

  return until(async () => {
    const run = await post('runs/get', { run_name: runName });

    return ['done', 'failed', 'terminated'].includes(run.status) ? run : undefined;
  }, 60_000);
}

async function logText(runName: string, submissionId: string): Promise<string> {
  const page = await post('logs/poll', {
    run_name: runName,
    job_submission_id: submissionId,
    limit: 1000,
  });

  return (page.logs as { message: string }[])
    .map((event) => Buffer.from(event.message, 'base64').toString('utf8'))
    .join('');
}

beforeAll(async () => {
  for (const address of ['127.0.0.17', '127.0.0.18']) {
    const host = await startSshd({ address, authorizedKeys: [userKey.publicKey] });
    hosts.push(host);
    originalKeys.push(readFileSync(host.authorizedKeysPath, 'utf8'));
  }

  store = createMemoryStateStore();
  logStore = createMemoryLogStore();
  cipher = createCipher();
  await startServer();
});

afterAll(async () => {
  await stopServer();
  for (const host of hosts) {
    await host.stop();
  }

  await store?.close();
});

describe('the fleet-ssh fixture through the HTTP API', () => {
  it('comes up with both instances idle, the keys redacted', async () => {
    const applied = await applyFleet('any');

    expect(applied.spec.configuration.ssh_config.ssh_key).toBeNull();
    const fleet = await until(async () => {
      const current = await post('fleets/get', { name: 'on-prem' });
      const statuses = (current.instances as Json[]).map((instance) => instance.status);

      return statuses.length === 2 && statuses.every((status) => status === 'idle')
        ? current
        : undefined;
    });
    const instances = fleet.instances as Json[];
    expect(instances.map((instance) => instance.hostname).sort()).toEqual([
      '127.0.0.17',
      '127.0.0.18',
    ]);
    expect(instances[0]).toMatchObject({ backend: 'remote', region: 'remote', price: 0 });
  });

  it('runs task-hello with its logs', async () => {
    const run = await runToEnd('task-hello.dstack.yml', 'hello-http');

    expect(run.status).toBe('done');
    const submission = run.jobs[0].job_submissions[0];
    expect(await logText('hello-http', submission.id)).toBe(helloLog);
  });

  it('runs task-multinode across both hosts once the fleet is a cluster', async () => {
    await applyFleet('cluster');

    const run = await runToEnd('task-multinode.dstack.yml', 'two-nodes-http');

    expect(run.status).toBe('done');
    const texts = await Promise.all(
      (run.jobs as Json[]).map((job) => logText('two-nodes-http', job.job_submissions[0].id)),
    );
    expect(texts.map((text) => text.split('\n')[0]).sort()).toEqual([
      expect.stringMatching(/^rank=0 nodes=2 master=127\.0\.0\.1[78]$/),
      expect.stringMatching(/^rank=1 nodes=2 master=127\.0\.0\.1[78]$/),
    ]);
    for (const text of texts) {
      expect(text.split('ips=')[1].trim().split('\n').sort()).toEqual([
        '127.0.0.17',
        '127.0.0.18',
      ]);
    }
  });

  it('finishes a job across a server restart, its log complete and unduplicated', async () => {
    const configuration = { ...fixture('task-hello.dstack.yml'), name: 'hello-restart' };
    await post('runs/apply', {
      plan: { run_spec: { configuration, ssh_key_pub: userKey.publicKey }, current_resource: null },
      force: false,
    });
    await until(async () => {
      const run = await post('runs/get', { run_name: 'hello-restart' });

      return run.status === 'running' ? run : undefined;
    });

    await stopServer();
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await startServer();

    const run = await until(async () => {
      const current = await post('runs/get', { run_name: 'hello-restart' });

      return ['done', 'failed', 'terminated'].includes(current.status) ? current : undefined;
    });
    expect(run.status).toBe('done');
    expect(await logText('hello-restart', run.jobs[0].job_submissions[0].id)).toBe(helloLog);
  });

  it('refuses a remote backend in a project with a 400 that points to SSH fleets', async () => {
    const response = await server!.inject({
      method: 'POST',
      url: '/api/project/main/backends/create',
      headers: { authorization: `Bearer ${token}` },
      payload: { type: 'remote' },
    });

    expect(response.statusCode).toBe(400);
    expect(response.json()).toEqual({
      detail: [
        {
          msg: 'The remote backend cannot be configured: add on-prem hosts with an SSH fleet ' +
            '(a fleet configuration with ssh_config)',
          code: 'error',
          fields: ['type'],
        },
      ],
    });
  });

  it('deleting the fleet leaves the hosts as they were', async () => {
    await post('fleets/delete', { names: ['on-prem'] });

    await until(async () => {
      const fleets = (await post('fleets/list', {})) as unknown as Json[];

      return fleets.length === 0 ? true : undefined;
    });
    for (const [index, host] of hosts.entries()) {
      expect(readFileSync(host.authorizedKeysPath, 'utf8')).toBe(originalKeys[index]);
    }
  });
});
