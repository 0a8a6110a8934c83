import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createLocalBackendProvider,
  ensureDefaultFleet,
  newId,
  startScheduler,
  type LogEvent,
  type LogStore,
  type LogStream,
} from '@dstack/core';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import {
  startFakeCloudWatchLogs,
  type FakeCloudWatchLogs,
} from '../../logs-cloudwatch/test/fake-cloudwatch-logs-server.js';
import {
  startFakeGcpLogging,
  type FakeGcpLogging,
} from '../../logs-gcp/test/fake-gcp-logging-server.js';
import { openLogStore } from '../src/compose/log-store.js';
import { openStateStore } from '../src/compose/state-store.js';
import { createTestServer, post } from './helpers.js';

const stream: LogStream = {
  projectName: 'main',
  runName: 'compose-run',
  jobSubmissionId: 'f2b8a0c4-6a43-4b35-9d2e-1c8e7f3a5b60',
  producer: 'job',
};

const events: LogEvent[] = Array.from({ length: 5 }, (_, k) => ({
  timestamp: Date.now() - 3_600_000 + k,
  logSource: 'stdout',
  message: `compose line ${k}\n`,
}));

const awsKeys = { AWS_ACCESS_KEY_ID: 'AKIDCOMPOSE', AWS_SECRET_ACCESS_KEY: 'compose-secret' };

describe('openLogStore', () => {
  let serverDir: string;
  let cloudWatch: FakeCloudWatchLogs;
  let gcp: FakeGcpLogging;
  const opened: LogStore[] = [];
  const savedEnv = { ...process.env };

  beforeAll(async () => {
    cloudWatch = await startFakeCloudWatchLogs();
    cloudWatch.createLogGroup('dstack-logs');
    gcp = await startFakeGcpLogging(['dstack-gcp']);
  });

  afterEach(async () => {
    await Promise.all(opened.splice(0).map((store) => store.close?.()));
    await rm(serverDir, { recursive: true, force: true });
    cloudWatch.options.denyAll = false;
    process.env = { ...savedEnv };
  });

  afterAll(async () => {
    await cloudWatch.close();
    await gcp.close();
  });

  async function open(env: Record<string, string>): Promise<LogStore> {
    serverDir = await mkdtemp(join(tmpdir(), 'dstack-compose-logs-'));
    const store = await openLogStore({ env, serverDir });
    opened.push(store);
    return store;
  }

  async function openFails(env: Record<string, string>): Promise<unknown> {
    serverDir = await mkdtemp(join(tmpdir(), 'dstack-compose-logs-'));
    return openLogStore({ env, serverDir }).then(
      () => new Error('the store started'),
      (error: unknown) => error,
    );
  }

  const cloudWatchEnv = (group = 'dstack-logs') => ({
    DSTACK_SERVER_CLOUDWATCH_LOG_GROUP: group,
    DSTACK_SERVER_CLOUDWATCH_LOG_REGION: 'eu-central-1',
    DSTACK_SERVER_CLOUDWATCH_ENDPOINT: cloudWatch.url,
    ...awsKeys,
  });

  const gcpEnv = (project = 'dstack-gcp') => ({
    DSTACK_SERVER_GCP_LOGGING_PROJECT: project,
    DSTACK_SERVER_GCP_LOGGING_ENDPOINT: gcp.url,
  });

  it('keeps logs in files under the server directory when nothing else is set', async () => {
    const store = await open({});

    await store.write(stream, events);
    const page = await store.poll(stream, { limit: 100 });
    const path = join(serverDir, 'projects/main/logs/compose-run', stream.jobSubmissionId);

    expect(page.events).toEqual(events);
    expect(await readFile(join(path, 'job.log'), 'utf8')).toContain('compose line 4');
  });

  it('picks CloudWatch when a log group is set, and another replica reads the logs', async () => {
    const writer = await open(cloudWatchEnv());
    await writer.write(stream, events);
    await writer.close?.();

    const reader = await open(cloudWatchEnv());
    const page = await reader.poll(stream, { limit: 100 });

    expect(page.events).toEqual(events);
    expect(page.externalUrl).toContain('region=eu-central-1');
    expect(cloudWatch.streamNames('dstack-logs')).toContain(
      `main/compose-run/${stream.jobSubmissionId}/job`,
    );
    expect(existsSync(join(serverDir, 'projects'))).toBe(false);
  });

  it('prefers CloudWatch over GCP when both are set', async () => {
    const gcpCalls = Object.values(gcp.calls).reduce((sum, n) => sum + n, 0);
    const store = await open({ ...cloudWatchEnv(), ...gcpEnv() });

    await store.write(stream, events.slice(0, 1));
    await store.close?.();

    expect(Object.values(gcp.calls).reduce((sum, n) => sum + n, 0)).toBe(gcpCalls);
  });

  it('stops with one clear message when the log group does not exist', async () => {
    const error = await openFails(cloudWatchEnv('no-such-group'));

    expect((error as Error).message).toBe(
      'CloudWatch log storage (DSTACK_SERVER_CLOUDWATCH_LOG_GROUP=no-such-group) cannot ' +
        "start: LogGroup 'no-such-group' does not exist",
    );
    expect(existsSync(join(serverDir, 'projects'))).toBe(false);
  });

  it('stops when the role may not use the group', async () => {
    cloudWatch.options.denyAll = true;

    const error = await openFails(cloudWatchEnv());

    expect((error as Error).message).toContain(
      "cannot start: Cannot use CloudWatch log group 'dstack-logs': " +
        'AccessDeniedException: User is not authorized to perform: logs:DescribeLogStreams',
    );
  });

  it('stops when there are no AWS credentials', async () => {
    // Keeps the SDK's default chain away from files and from any instance metadata address.
    for (const name of Object.keys(process.env).filter((k) => k.startsWith('AWS_'))) {
      delete process.env[name];
    }

    process.env.AWS_EC2_METADATA_DISABLED = 'true';
    process.env.AWS_CONFIG_FILE = '/nonexistent/aws-config';
    process.env.AWS_SHARED_CREDENTIALS_FILE = '/nonexistent/aws-credentials';
    const { AWS_ACCESS_KEY_ID: _, AWS_SECRET_ACCESS_KEY: __, ...withoutKeys } = cloudWatchEnv();

    const error = await openFails(withoutKeys);

    const message = (error as Error).message;
    expect(message).toMatch(/^CloudWatch log storage \(\S+\) cannot start: /);
    expect(message).toMatch(/Cannot use CloudWatch log group 'dstack-logs': .*credentials/i);
    expect(cloudWatch.calls.DescribeLogStreams).toBeGreaterThan(0);
  });

  it('picks GCP Logging when a project is set, and another replica reads the logs', async () => {
    const writer = await open(gcpEnv());
    await writer.write(stream, events);
    await writer.close?.();

    const reader = await open(gcpEnv());
    const page = await reader.poll(stream, { limit: 100 });

    expect(page.events).toEqual(events);
    expect(gcp.entries().every((e) => e.logName === 'projects/dstack-gcp/logs/dstack-run-logs'));
    expect(existsSync(join(serverDir, 'projects'))).toBe(false);
  });

  it('stops with one clear message when the GCP project cannot be used', async () => {
    const error = await openFails(gcpEnv('other-project'));

    expect((error as Error).message).toBe(
      'GCP Logging log storage (DSTACK_SERVER_GCP_LOGGING_PROJECT=other-project) cannot start: ' +
        "Cannot use GCP Logging in project 'other-project': NOT_FOUND: Project other-project " +
        'not found',
    );
  });

  it('stops when the GCP credentials cannot be loaded', async () => {
    // A credentials file that does not exist: the library fails before any request.
    process.env.GOOGLE_APPLICATION_CREDENTIALS = join(tmpdir(), 'no-such-credentials.json');

    const error = await openFails({ DSTACK_SERVER_GCP_LOGGING_PROJECT: 'dstack-gcp' });

    const message = (error as Error).message;
    expect(message).toMatch(/^GCP Logging log storage \(\S+\) cannot start: /);
    expect(message).toMatch(/cannot start: .*no-such-credentials\.json/);
  });
});

const fixtures = join(import.meta.dirname, '../../../../shared/fixtures/configs');

// What task-long-output prints, with its two invalid bytes replaced as the API promises.
const longOutput =
  Array.from({ length: 50_000 }, (_, i) => `row ${i} ${'x'.repeat(i % 300)}\n`).join('') +
  'no newline at end' +
  '\ufffd\ufffd invalid utf-8 bytes\n' +
  `wide: ${'é'.repeat(40_000)}\n`;

describe('task-long-output through logs/poll with each log store', () => {
  let cloudWatch: FakeCloudWatchLogs;
  let gcp: FakeGcpLogging;

  beforeAll(async () => {
    // The services throttle one request in five the whole time.
    cloudWatch = await startFakeCloudWatchLogs({ throttleEvery: 5 });
    cloudWatch.createLogGroup('dstack-e2e');
    gcp = await startFakeGcpLogging(['dstack-e2e'], { throttleEvery: 5 });
  });

  afterAll(async () => {
    await cloudWatch.close();
    await gcp.close();
  });

  const kinds: [string, () => Record<string, string>][] = [
    ['files', () => ({})],
    [
      'CloudWatch',
      () => ({
        DSTACK_SERVER_CLOUDWATCH_LOG_GROUP: 'dstack-e2e',
        DSTACK_SERVER_CLOUDWATCH_LOG_REGION: 'us-east-2',
        DSTACK_SERVER_CLOUDWATCH_ENDPOINT: cloudWatch.url,
        ...awsKeys,
      }),
    ],
    [
      'GCP Logging',
      () => ({
        DSTACK_SERVER_GCP_LOGGING_PROJECT: 'dstack-e2e',
        DSTACK_SERVER_GCP_LOGGING_ENDPOINT: gcp.url,
      }),
    ],
  ];

  for (const [kind, env] of kinds) {
    it(`reads back every byte in order from ${kind}`, { timeout: 240_000 }, async () => {
      const dir = await mkdtemp(join(tmpdir(), 'dstack-e2e-logs-'));
      const logStore = await openLogStore({ env: env(), serverDir: dir });
      const server = await createTestServer({
        providers: [createLocalBackendProvider({ serverDir: dir })],
        settings: { serverDir: dir },
        logStore,
      });
      const scheduler = startScheduler(server.ctx, { stopGraceMillis: 1000 });

      try {
        const project = await server.ctx.store.findOne('projects', { where: { name: 'main' } });
        await server.ctx.store.insert('backends', {
          id: newId(),
          projectId: project!.id,
          type: 'local',
          config: {},
          auth: null,
          sourceConfig: {},
          sourceAuth: null,
        });
        await ensureDefaultFleet(server.ctx, 'main');
        const configuration = await longOutputTask();
        const applied = await post(server, '/api/project/main/runs/apply', server.adminToken, {
          plan: { run_spec: { configuration, ssh_key_pub: 'ssh-rsa AAA' }, current_resource: null },
          force: false,
        });
        expect(applied.statusCode, applied.body).toBe(200);

        const run = await waitForRun(server, 'chatty', 180_000);
        expect(run.status).toBe('done');
        const submissionId = run.jobs[0].job_submissions[0].id as string;
        const text = await pollAll(server, 'chatty', submissionId);

        expect(text.length).toBe(longOutput.length);
        expect(text === longOutput).toBe(true);
      } finally {
        await scheduler.stop();
        await server.close();
        await logStore.close?.();
        await rm(dir, { recursive: true, force: true });
      }
    });
  }
});

describe('two replicas on one Postgres with CloudWatch', () => {
  const postgresBase =
    process.env.DSTACK_TEST_POSTGRES_URL ?? 'postgresql://postgres@127.0.0.1:5432/test';
  const schema = `compose_logs_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Pool({ connectionString: postgresBase, max: 1 });
  let cloudWatch: FakeCloudWatchLogs;
  let dir: string;
  const replicas: { server: Server; close(): Promise<void> }[] = [];

  function databaseUrl(): string {
    const url = new URL(postgresBase);
    url.searchParams.set('options', `-c search_path=${schema}`);
    return url.toString();
  }

  async function replica(): Promise<Server> {
    const store = await openStateStore({ serverDir: dir, databaseUrl: databaseUrl() });
    const logStore = await openLogStore({
      env: {
        DSTACK_SERVER_CLOUDWATCH_LOG_GROUP: 'dstack-replicas',
        DSTACK_SERVER_CLOUDWATCH_LOG_REGION: 'us-west-2',
        DSTACK_SERVER_CLOUDWATCH_ENDPOINT: cloudWatch.url,
        ...awsKeys,
      },
      serverDir: dir,
    });
    const server = await createTestServer({
      store,
      logStore,
      providers: [createLocalBackendProvider({ serverDir: dir })],
      settings: { serverDir: dir },
    });
    replicas.push({
      server,
      async close() {
        await server.close();
        await logStore.close?.();
        await store.close();
      },
    });
    return server;
  }

  beforeAll(async () => {
    await admin.query(`create schema "${schema}"`);
    cloudWatch = await startFakeCloudWatchLogs({ throttleEvery: 5 });
    cloudWatch.createLogGroup('dstack-replicas');
    dir = await mkdtemp(join(tmpdir(), 'dstack-replicas-logs-'));
  });

  afterAll(async () => {
    for (const opened of replicas.splice(0).reverse()) {
      await opened.close();
    }

    await cloudWatch.close();
    await admin.query(`drop schema if exists "${schema}" cascade`);
    await admin.end();
    await rm(dir, { recursive: true, force: true });
  });

  const serves = 'serves the same logs from either replica, whichever ran the job';

  it(serves, { timeout: 120_000 }, async () => {
    const first = await replica();
    const second = await replica();
    const project = await first.ctx.store.findOne('projects', { where: { name: 'main' } });
    await first.ctx.store.insert('backends', {
      id: newId(),
      projectId: project!.id,
      type: 'local',
      config: {},
      auth: null,
      sourceConfig: {},
      sourceAuth: null,
    });
    await ensureDefaultFleet(first.ctx, 'main');
    const hello = parse(
      await readFile(join(fixtures, 'task-hello.dstack.yml'), 'utf8'),
    ) as Record<string, unknown>;

    // Only one replica schedules at a time, so it is known which one ran each job.
    for (const [runner, reader, runName] of [
      [first, second, 'hello-on-first'],
      [second, first, 'hello-on-second'],
    ] as const) {
      const scheduler = startScheduler(runner.ctx, { replicaId: runName, stopGraceMillis: 1000 });

      try {
        const applied = await post(runner, '/api/project/main/runs/apply', runner.adminToken, {
          plan: {
            run_spec: { configuration: { ...hello, name: runName }, ssh_key_pub: 'ssh-rsa AAA' },
            current_resource: null,
          },
          force: false,
        });
        expect(applied.statusCode, applied.body).toBe(200);
        const run = await waitForRun(reader, runName, 60_000);
        expect(run.status).toBe('done');
        const submissionId = run.jobs[0].job_submissions[0].id;

        const fromReader = await pollAll(reader, runName, submissionId);
        const fromRunner = await pollAll(runner, runName, submissionId);

        expect(fromReader).toContain('hello from node 0 of 1\n');
        expect(fromReader).toContain('line 3\n');
        expect(fromReader).toContain('to stderr\n');
        expect(fromReader).toBe(fromRunner);
      } finally {
        await scheduler.stop();
      }
    }

    expect(cloudWatch.streamNames('dstack-replicas')).toHaveLength(4);
    expect(existsSync(join(dir, 'projects'))).toBe(false);
  });
});

// The built bin (build core and server first), as an operator starts it.
describe('the bin with remote log stores', () => {
  const bin = join(import.meta.dirname, '../dist/cli.js');
  const token = 'remote-logs-admin-token';
  const postgresBase =
    process.env.DSTACK_TEST_POSTGRES_URL ?? 'postgresql://postgres@127.0.0.1:5432/test';
  const schema = `bin_logs_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Pool({ connectionString: postgresBase, max: 1 });
  const children = new Set<ChildProcess>();
  const dirs: string[] = [];
  let cloudWatch: FakeCloudWatchLogs;
  let gcp: FakeGcpLogging;

  beforeAll(async () => {
    await admin.query(`create schema "${schema}"`);
    cloudWatch = await startFakeCloudWatchLogs({ throttleEvery: 5 });
    cloudWatch.createLogGroup('dstack-bin');
    gcp = await startFakeGcpLogging(['dstack-bin'], { throttleEvery: 5 });
  });

  afterAll(async () => {
    await Promise.all([...children].map((child) => stopBin(child)));
    await cloudWatch.close();
    await gcp.close();
    await admin.query(`drop schema if exists "${schema}" cascade`);
    await admin.end();
    await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
  });

  async function newDir(): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'dstack-bin-logs-'));
    dirs.push(dir);
    return dir;
  }

  function spawnBin(dir: string, env: Record<string, string>) {
    const child = spawn(process.execPath, [bin, '--port', '0'], {
      env: {
        ...process.env,
        DSTACK_SERVER_DIR: dir,
        DSTACK_SERVER_ADMIN_TOKEN: token,
        DSTACK_SERVER_LOG_LEVEL: 'WARNING',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    child.once('exit', () => children.delete(child));
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    return { child, output: () => output };
  }

  async function startBin(dir: string, env: Record<string, string>): Promise<BinServer> {
    const started = spawnBin(dir, env);

    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no start: ${started.output()}`)), 30_000);
      started.child.stdout?.on('data', () => {
        const match = /is running at (\S+)/.exec(started.output());

        if (match !== null) {
          clearTimeout(timer);
          resolve(match[1]);
        }
      });
      started.child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`exited ${code}: ${started.output()}`));
      });
    });

    return { child: started.child, url, token };
  }

  async function stopBin(child: ChildProcess): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) {
      return;
    }

    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    });
  }

  const cloudWatchEnv = (group = 'dstack-bin') => ({
    DSTACK_SERVER_CLOUDWATCH_LOG_GROUP: group,
    DSTACK_SERVER_CLOUDWATCH_LOG_REGION: 'eu-north-1',
    DSTACK_SERVER_CLOUDWATCH_ENDPOINT: cloudWatch.url,
    ...awsKeys,
  });

  it('stops at start, with one clear message, when the log group is missing', async () => {
    const dir = await newDir();
    const started = spawnBin(dir, cloudWatchEnv('missing-group'));
    const code = await new Promise<number | null>((resolve) => started.child.once('exit', resolve));

    expect(code).not.toBe(0);
    expect(started.output()).toContain(
      'CloudWatch log storage (DSTACK_SERVER_CLOUDWATCH_LOG_GROUP=missing-group) cannot ' +
        "start: LogGroup 'missing-group' does not exist",
    );
    expect(started.output()).not.toMatch(/at .*\.js:\d+/);
    expect(existsSync(join(dir, 'projects'))).toBe(false);
  });

  for (const [kind, env] of [
    ['CloudWatch', () => cloudWatchEnv()],
    [
      'GCP Logging',
      () => ({
        DSTACK_SERVER_GCP_LOGGING_PROJECT: 'dstack-bin',
        DSTACK_SERVER_GCP_LOGGING_ENDPOINT: gcp.url,
      }),
    ],
  ] as const) {
    const title = `runs task-long-output and reads every byte back from ${kind}`;

    it(title, { timeout: 240_000 }, async () => {
      const dir = await newDir();
      const server = await startBin(dir, env());

      try {
        await prepareMain(server);
        const applied = await binApi(server, '/api/project/main/runs/apply', {
          plan: {
            run_spec: { configuration: await longOutputTask(), ssh_key_pub: 'ssh-rsa AAA' },
            current_resource: null,
          },
          force: false,
        });
        expect(applied.status, JSON.stringify(applied.json)).toBe(200);
        const run = await waitForBinRun(server, 'chatty', 180_000);
        expect(run.status).toBe('done');

        const text = await pollAllFrom(server, 'chatty', run.jobs[0].job_submissions[0].id);

        expect(text.length).toBe(longOutput.length);
        expect(text === longOutput).toBe(true);
        expect(existsSync(join(dir, 'projects'))).toBe(false);
      } finally {
        await stopBin(server.child);
      }
    });
  }

  const replicas = 'two replicas on one Postgres serve the same CloudWatch logs';

  it(replicas, { timeout: 120_000 }, async () => {
    const dir = await newDir();
    const url = new URL(postgresBase);
    url.searchParams.set('options', `-c search_path=${schema}`);
    const env = { ...cloudWatchEnv(), DSTACK_DATABASE_URL: url.toString() };
    const first = await startBin(dir, env);
    const second = await startBin(dir, env);

    try {
      await prepareMain(first);
      const hello = parse(
        await readFile(join(fixtures, 'task-hello.dstack.yml'), 'utf8'),
      ) as Record<string, unknown>;
      const applied = await binApi(first, '/api/project/main/runs/apply', {
        plan: {
          run_spec: { configuration: hello, ssh_key_pub: 'ssh-rsa AAA' },
          current_resource: null,
        },
        force: false,
      });
      expect(applied.status, JSON.stringify(applied.json)).toBe(200);
      const run = await waitForBinRun(second, 'hello', 60_000);
      expect(run.status).toBe('done');
      const submissionId = run.jobs[0].job_submissions[0].id;

      const fromFirst = await pollAllFrom(first, 'hello', submissionId);
      const fromSecond = await pollAllFrom(second, 'hello', submissionId);

      expect(fromFirst).toContain('hello from node 0 of 1\n');
      expect(fromFirst).toContain('line 3\n');
      expect(fromFirst).toContain('to stderr\n');
      expect(fromSecond).toBe(fromFirst);
    } finally {
      await stopBin(first.child);
      await stopBin(second.child);
    }
  });
});

interface BinServer {
  child: ChildProcess;
  url: string;
  token: string;
}

async function binApi(
  server: BinServer,
  path: string,
  body: unknown,
): Promise<{ status: number; json: any }> {
  const response = await fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${server.token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, json: text === '' ? null : JSON.parse(text) };
}

/** Project main with the local backend and its default fleet, which comes shortly after start. */
async function prepareMain(server: BinServer): Promise<void> {
  const project = await binApi(server, '/api/projects/main/get', {});
  const backends = (project.json as { backends: { name: string }[] }).backends;

  if (!backends.some((backend) => backend.name === 'local')) {
    const created = await binApi(server, '/api/project/main/backends/create', { type: 'local' });
    expect(created.status, JSON.stringify(created.json)).toBe(200);
  }

  const deadline = Date.now() + 20_000;

  while (Date.now() < deadline) {
    const fleets = await binApi(server, '/api/project/main/fleets/list', {});

    if ((fleets.json as unknown[]).length > 0) {
      return;
    }

    await new Promise((resolve) => setTimeout(resolve, 200));
  }

  throw new Error('project main got no default fleet');
}

async function waitForBinRun(server: BinServer, runName: string, timeoutMillis: number) {
  const deadline = Date.now() + timeoutMillis;

  for (;;) {
    const { json } = await binApi(server, '/api/project/main/runs/get', { run_name: runName });
    const run = json as { status: string; jobs: { job_submissions: { id: string }[] }[] };

    if (['done', 'failed', 'terminated'].includes(run.status) || Date.now() > deadline) {
      return run;
    }

    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Follows next_token from the start as the CLI does, over HTTP. */
async function pollAllFrom(server: BinServer, runName: string, submissionId: string) {
  const parts: string[] = [];
  let nextToken: string | null = null;

  for (let pages = 0; pages < 500; pages += 1) {
    const { status, json } = await binApi(server, '/api/project/main/logs/poll', {
      run_name: runName,
      job_submission_id: submissionId,
      limit: 1000,
      ...(nextToken === null ? {} : { next_token: nextToken }),
    });
    expect(status, JSON.stringify(json)).toBe(200);
    const page = json as { logs: { message: string }[]; next_token?: string | null };
    expect(page.logs.length).toBeLessThanOrEqual(1000);
    parts.push(...page.logs.map((event) => Buffer.from(event.message, 'base64').toString('utf8')));
    nextToken = page.next_token ?? null;

    if (nextToken === null) {
      return parts.join('');
    }
  }

  throw new Error('next_token never ended');
}

type Server = Awaited<ReturnType<typeof createTestServer>>;

/**
 * The fixture's configuration. As written it is not valid YAML (line 7 holds ': ' in a plain
 * scalar), so its commands are taken as intended when the file does not parse.
 */
async function longOutputTask(): Promise<unknown> {
  const text = await readFile(join(fixtures, 'task-long-output.dstack.yml'), 'utf8');

  try {
    return parse(text) as unknown;
  } catch {
    return {
      type: 'task',
      name: 'chatty',
      commands: [
        `python3 -c "import sys; [print('row', i, 'x' * (i % 300)) for i in range(50000)]"`,
        "printf 'no newline at end'",
        "printf '\\xff\\xfe invalid utf-8 bytes\\n'",
        `python3 -c "print('wide: ' + 'é' * 40000)"`,
      ],
    };
  }
}

async function waitForRun(
  server: Server,
  runName: string,
  timeoutMillis: number,
): Promise<{ status: string; jobs: { job_submissions: { id: string }[] }[] }> {
  const deadline = Date.now() + timeoutMillis;

  for (;;) {
    const response = await post(server, '/api/project/main/runs/get', server.adminToken, {
      run_name: runName,
    });
    const run = response.json() as Awaited<ReturnType<typeof waitForRun>>;

    if (['done', 'failed', 'terminated'].includes(run.status) || Date.now() > deadline) {
      return run;
    }

    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Follows next_token from the start as the CLI does: ascending, pages of 1,000. */
async function pollAll(server: Server, runName: string, submissionId: string): Promise<string> {
  const parts: string[] = [];
  let nextToken: string | null = null;
  let pages = 0;

  do {
    const response = await post(server, '/api/project/main/logs/poll', server.adminToken, {
      run_name: runName,
      job_submission_id: submissionId,
      limit: 1000,
      ...(nextToken === null ? {} : { next_token: nextToken }),
    });
    expect(response.statusCode, response.body).toBe(200);
    const page = response.json() as { logs: { message: string }[]; next_token?: string | null };
    expect(page.logs.length).toBeLessThanOrEqual(1000);
    parts.push(...page.logs.map((event) => Buffer.from(event.message, 'base64').toString('utf8')));
    nextToken = page.next_token ?? null;
    pages += 1;
    expect(pages).toBeLessThan(500);
  } while (nextToken !== null);

  return parts.join('');
}
