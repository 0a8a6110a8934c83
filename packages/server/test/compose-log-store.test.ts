import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LogEvent, LogStore, LogStream } from '@dstack/core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  startFakeCloudWatchLogs,
  type FakeCloudWatchLogs,
} from '../../logs-cloudwatch/test/fake-cloudwatch-logs-server.js';
import {
  startFakeGcpLogging,
  type FakeGcpLogging,
} from '../../logs-gcp/test/fake-gcp-logging-server.js';
import { openLogStore } from '../src/compose/log-store.js';

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
