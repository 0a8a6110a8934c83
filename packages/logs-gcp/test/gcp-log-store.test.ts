import type { BufferedLogStore, LogEvent, LogStream } from '@dstack/core';
import { runLogStoreContract } from '@dstack/core/testing';
import {
  createGcpLoggingClient,
  createGcpLogStore,
  gcpReadQuotaMessage,
  gcpStreamLabel,
} from '@dstack/logs-gcp';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startFakeGcpLogging, type FakeGcpLogging } from './fake-gcp-logging-server.js';

const projectId = 'dstack-test-project';
const fastRetry = { initialDelayMillis: 5, maxDelayMillis: 40 };
const hour = 3_600_000;

async function open(fake: FakeGcpLogging, project = projectId): Promise<BufferedLogStore> {
  return createGcpLogStore({
    logging: await createGcpLoggingClient({ projectId: project, endpoint: fake.url }),
    projectId: project,
    retry: fastRetry,
    maxReadAttempts: 6,
    writer: { flushIntervalMillis: 50 },
  });
}

function streamOf(): LogStream {
  return {
    projectName: 'main',
    runName: 'run-g',
    jobSubmissionId: crypto.randomUUID(),
    producer: 'job',
  };
}

function events(count: number, from: number): LogEvent[] {
  return Array.from({ length: count }, (_, k) => ({
    timestamp: from + k,
    logSource: 'stdout' as const,
    message: `entry ${k}\n`,
  }));
}

describe('contract on the fake Cloud Logging', () => {
  let fake: FakeGcpLogging;

  beforeAll(async () => {
    fake = await startFakeGcpLogging([projectId]);
  });

  afterAll(async () => {
    await fake.close();
  });

  runLogStoreContract('gcp', () => open(fake));
});

describe('contract on a fake Cloud Logging that throttles and fails', () => {
  let fake: FakeGcpLogging;

  beforeAll(async () => {
    fake = await startFakeGcpLogging([projectId], { throttleEvery: 5, failEvery: 13 });
  });

  afterAll(async () => {
    await fake.close();
  });

  runLogStoreContract('gcp, throttled one request in five', () => open(fake));
});

describe('gcp log store', () => {
  let fake: FakeGcpLogging;
  const stores: BufferedLogStore[] = [];

  beforeAll(async () => {
    fake = await startFakeGcpLogging([projectId]);
  });

  afterEach(async () => {
    await Promise.all(stores.splice(0).map((store) => store.close()));
    fake.options.readQuotaExhausted = false;
    fake.options.throttleEvery = undefined;
    fake.options.denyWrites = false;
  });

  afterAll(async () => {
    await fake.close();
  });

  async function store(): Promise<BufferedLogStore> {
    const opened = await open(fake);
    stores.push(opened);
    return opened;
  }

  it('writes to dstack-run-logs with the stream label of the original', async () => {
    const logs = await store();
    const stream = streamOf();

    await logs.write(stream, events(3, Date.now() - hour));
    await logs.flush();
    const written = fake.entries().filter((e) => e.labels.stream === gcpStreamLabel(stream));

    expect(gcpStreamLabel(stream)).toBe(`main-run-g-${stream.jobSubmissionId}-job`);
    expect(written).toHaveLength(3);
    expect(written[0].logName).toBe(`projects/${projectId}/logs/dstack-run-logs`);
    expect(written[0].jsonPayload).toEqual({ message: 'entry 0\n' });
  });

  it('links each page to the stream in the Logs Explorer', async () => {
    const logs = await store();
    const stream = streamOf();

    const page = await logs.poll(stream, { limit: 10 });

    expect(page.externalUrl).toBe(
      'https://console.cloud.google.com/logs/query;query=' +
        'logName%3D%22projects%2Fdstack-test-project%2Flogs%2Fdstack-run-logs%22%20AND%20' +
        `labels.stream%3D%22main-run-g-${stream.jobSubmissionId}-job%22` +
        '?project=dstack-test-project',
    );
  });

  it('checks access at start with a dry-run write that leaves nothing behind', async () => {
    const before = fake.entries().length;
    const dryRuns = fake.calls.dryRun ?? 0;

    await store();

    expect(fake.calls.dryRun).toBe(dryRuns + 1);
    expect(fake.entries()).toHaveLength(before);
  });

  it('refuses to start in a project it cannot reach, or without write permission', async () => {
    await expect(open(fake, 'no-such-project')).rejects.toThrow(
      "Cannot use GCP Logging in project 'no-such-project': NOT_FOUND: Project no-such-project",
    );

    fake.options.denyWrites = true;

    await expect(open(fake)).rejects.toThrow(/PERMISSION_DENIED: Permission logging/);
  });

  it('batches writes within the request limits', async () => {
    const logs = await store();
    const stream = streamOf();
    const writesBefore = fake.writes.length;
    const input = Array.from({ length: 2_500 }, (_, k) => ({
      timestamp: Date.now() - hour + k,
      logSource: 'stdout' as const,
      message: k % 100 === 0 ? 'ж'.repeat(16_000) : `line ${k}\n`,
    }));

    await logs.write(stream, input);
    await logs.flush();
    const writes = fake.writes.slice(writesBefore);

    expect(writes.length).toBeGreaterThanOrEqual(3);
    expect(writes.every((w) => w.entries <= 1_000 && w.bytes <= 10 * 1024 * 1024)).toBe(true);
    const page = await logs.poll(stream, { limit: 1000, startTime: input[2_099].timestamp });
    expect(page.events).toEqual(input.slice(2_100));
  });

  it('splits a message larger than 32 KiB and keeps the pieces in order', async () => {
    const logs = await store();
    const stream = streamOf();
    const message = `${'\u0007'.repeat(40_000)}${'end'.repeat(10_000)}`;

    await logs.write(stream, [{ timestamp: Date.now() - hour, logSource: 'stdout', message }]);
    await logs.flush();
    const page = await logs.poll(stream, { limit: 1000 });

    expect(page.events.length).toBe(3);
    expect(page.events.map((e) => e.message).join('')).toBe(message);
  });

  it('turns the spent read quota into a clear 400', async () => {
    const logs = await store();
    fake.options.readQuotaExhausted = true;

    const polling = logs.poll(streamOf(), { limit: 10 });

    await expect(polling).rejects.toMatchObject({ status: 400, message: gcpReadQuotaMessage });
  });

  it('retries throttled writes and loses nothing', async () => {
    const logs = await store();
    const stream = streamOf();
    fake.options.throttleEvery = 2;
    const input = events(40, Date.now() - hour);

    for (let k = 0; k < 40; k += 4) {
      await logs.write(stream, input.slice(k, k + 4));
      await logs.flush();
    }

    fake.options.throttleEvery = undefined;

    expect((await logs.poll(stream, { limit: 1000 })).events).toEqual(input);
    expect(logs.metrics().retries).toBeGreaterThan(0);
  });

  it('turns a page token the service refuses into a 400', async () => {
    const logs = await store();

    await expect(logs.poll(streamOf(), { limit: 5, nextToken: 'bogus' })).rejects.toMatchObject({
      status: 400,
      message: 'Invalid next_token: bogus',
    });
  });
});
