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
