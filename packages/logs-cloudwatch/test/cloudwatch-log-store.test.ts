import { CloudWatchLogsClient } from '@aws-sdk/client-cloudwatch-logs';
import type { BufferedLogStore, LogEvent, LogPollRequest, LogStream } from '@dstack/core';
import { runLogStoreContract } from '@dstack/core/testing';
import { createCloudWatchLogStore } from '@dstack/logs-cloudwatch';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  startFakeCloudWatchLogs,
  type FakeCloudWatchLogs,
} from './fake-cloudwatch-logs-server.js';

const group = 'dstack-run-logs';
const fastRetry = { initialDelayMillis: 5, maxDelayMillis: 40 };
const hour = 3_600_000;
const day = 24 * hour;

function client(fake: FakeCloudWatchLogs): CloudWatchLogsClient {
  return new CloudWatchLogsClient({
    region: 'eu-west-1',
    endpoint: fake.url,
    credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'test-secret' },
    // The store's own retries are under test, so the SDK's are turned off.
    maxAttempts: 1,
  });
}

function open(fake: FakeCloudWatchLogs, logGroup = group): Promise<BufferedLogStore> {
  return createCloudWatchLogStore({
    client: client(fake),
    logGroup,
    region: 'eu-west-1',
    retry: fastRetry,
    maxReadAttempts: 6,
    writer: { flushIntervalMillis: 50 },
  });
}

function streamOf(name = 'run-a'): LogStream {
  return {
    projectName: 'main',
    runName: name,
    jobSubmissionId: crypto.randomUUID(),
    producer: 'job',
  };
}

function nameOf(stream: LogStream): string {
  return `${stream.projectName}/${stream.runName}/${stream.jobSubmissionId}/${stream.producer}`;
}

function events(count: number, from: number, stepMillis = 1): LogEvent[] {
  return Array.from({ length: count }, (_, k) => ({
    timestamp: from + k * stepMillis,
    logSource: 'stdout' as const,
    message: `event ${k}\n`,
  }));
}

async function readAll(
  store: BufferedLogStore,
  stream: LogStream,
  request: LogPollRequest,
): Promise<{ events: LogEvent[]; polls: number }> {
  const seen: LogEvent[] = [];
  let nextToken: string | null = null;
  let polls = 0;

  do {
    const page = await store.poll(stream, { ...request, nextToken });
    seen.push(...page.events);
    nextToken = page.nextToken;
    polls += 1;
    expect(polls).toBeLessThan(200);
  } while (nextToken !== null);

  return { events: seen, polls };
}

describe('contract on the fake CloudWatch Logs', () => {
  let fake: FakeCloudWatchLogs;

  beforeAll(async () => {
    fake = await startFakeCloudWatchLogs();
    fake.createLogGroup(group);
  });

  afterAll(async () => {
    await fake.close();
  });

  runLogStoreContract('cloudwatch', () => open(fake));
});

describe('contract on a fake CloudWatch Logs that throttles and fails', () => {
  let fake: FakeCloudWatchLogs;

  beforeAll(async () => {
    fake = await startFakeCloudWatchLogs({ throttleEvery: 5, failEvery: 13 });
    fake.createLogGroup(group);
  });

  afterAll(async () => {
    expect(fake.calls.PutLogEvents).toBeGreaterThan(0);
    await fake.close();
  });

  runLogStoreContract('cloudwatch, throttled one request in five', () => open(fake));
});

describe('cloudwatch log store', () => {
  let fake: FakeCloudWatchLogs;
  const stores: BufferedLogStore[] = [];

  beforeAll(async () => {
    fake = await startFakeCloudWatchLogs();
    fake.createLogGroup(group);
  });

  afterEach(async () => {
    await Promise.all(stores.splice(0).map((store) => store.close()));
    fake.options.throttleEvery = undefined;
    fake.options.failEvery = undefined;
    fake.options.maxScanMillis = undefined;
  });

  afterAll(async () => {
    await fake.close();
  });

  async function store(): Promise<BufferedLogStore> {
    const opened = await open(fake);
    stores.push(opened);
    return opened;
  }

  it('refuses to start when the group is missing, and never creates it', async () => {
    await expect(open(fake, 'no-such-group')).rejects.toThrow(
      "LogGroup 'no-such-group' does not exist",
    );
    expect(fake.calls.CreateLogGroup).toBeUndefined();
  });

  it('says why it cannot start when the service refuses the check', async () => {
    const dead = await startFakeCloudWatchLogs();
    const url = dead.url;
    await dead.close();

    const opening = createCloudWatchLogStore({
      client: new CloudWatchLogsClient({
        region: 'eu-west-1',
        endpoint: url,
        credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
        maxAttempts: 1,
      }),
      logGroup: group,
      maxReadAttempts: 1,
    });

    await expect(opening).rejects.toThrow(/^Cannot use CloudWatch log group 'dstack-run-logs'/);
  });

  it('creates one stream per submission and producer, once, named as the original', async () => {
    const logs = await store();
    const job = streamOf('train');
    const runner: LogStream = { ...job, producer: 'runner' };
    const before = fake.calls.CreateLogStream ?? 0;

    for (let k = 0; k < 3; k += 1) {
      await logs.write(job, events(2, Date.now() - hour + k * 10));
      await logs.write(runner, events(2, Date.now() - hour + k * 10));
      await logs.flush();
    }

    expect(fake.streamNames(group)).toEqual(
      expect.arrayContaining([
        `main/train/${job.jobSubmissionId}/job`,
        `main/train/${job.jobSubmissionId}/runner`,
      ]),
    );
    expect((fake.calls.CreateLogStream ?? 0) - before).toBe(2);
    expect(fake.events(group, nameOf(job))).toHaveLength(6);
  });

  it('remembers a bounded number of stream names', async () => {
    const logs = await createCloudWatchLogStore({
      client: client(fake),
      logGroup: group,
      maxKnownStreams: 2,
      writer: { flushIntervalMillis: 50 },
    });
    stores.push(logs);
    const streams = [streamOf(), streamOf(), streamOf()];
    const at = Date.now() - hour;

    for (const stream of streams) {
      await logs.write(stream, events(1, at));
    }

    const describesBefore = fake.calls.DescribeLogStreams ?? 0;
    await logs.write(streams[2], events(1, at + 1));
    await logs.write(streams[0], events(1, at + 1));

    // The newest name is still known; the oldest was forgotten and is looked up again.
    expect((fake.calls.DescribeLogStreams ?? 0) - describesBefore).toBe(1);
    expect(fake.events(group, nameOf(streams[0]))).toHaveLength(2);
  });

  it('keeps every PutLogEvents within the AWS limits and loses no event', async () => {
    const logs = await store();
    const stream = streamOf();
    const start = Date.now() - 3 * day;
    // 25,000 events over three days, some of them large: every limit gets reached.
    const input = Array.from({ length: 25_000 }, (_, k) => ({
      timestamp: start + k * 10_000,
      logSource: 'stdout' as const,
      message: k % 500 === 0 ? `${'€'.repeat(40_000)}\n` : `line ${k}\n`,
    }));
    const putsBefore = fake.puts.length;

    await logs.write(stream, input);
    await logs.flush();
    const puts = fake.puts.slice(putsBefore);

    for (const put of puts) {
      const bytes = put.logEvents.reduce((sum, e) => sum + Buffer.byteLength(e.message) + 26, 0);
      const stamps = put.logEvents.map((e) => e.timestamp);
      expect(put.logEvents.length).toBeLessThanOrEqual(10_000);
      expect(bytes).toBeLessThanOrEqual(1_048_576);
      expect(stamps[stamps.length - 1] - stamps[0]).toBeLessThan(day);
      expect(stamps).toEqual([...stamps].sort((a, b) => a - b));
    }

    expect(puts.length).toBeGreaterThanOrEqual(4);
    expect(fake.events(group, nameOf(stream)).map((e) => e.message)).toEqual(
      input.map((e) => e.message),
    );
    expect(logs.metrics()).toMatchObject({ sentEvents: 25_000, queuedEvents: 0 });
  });

  it('splits an event over 256 KB into several instead of dropping it', async () => {
    const logs = await store();
    const stream = streamOf();
    const message = `${'x'.repeat(200_000)}${'😀'.repeat(50_000)}\n`;

    await logs.write(stream, [{ timestamp: Date.now() - hour, logSource: 'stdout', message }]);
    await logs.flush();
    const page = await logs.poll(stream, { limit: 1000 });

    expect(page.events.length).toBe(2);
    expect(page.events.map((e) => e.message).join('')).toBe(message);
    expect(logs.metrics().splitEvents).toBe(1);
  });

  it('drops events too old or too far ahead, as the original does, and counts them', async () => {
    const logs = await store();
    const stream = streamOf();
    const now = Date.now();
    const input: LogEvent[] = [
      { timestamp: now - 14 * day + 5 * 60_000, logSource: 'stdout', message: 'too old\n' },
      { timestamp: now - 13 * day, logSource: 'stdout', message: 'old but kept\n' },
      { timestamp: now + 90 * 60_000, logSource: 'stdout', message: 'ahead but kept\n' },
      { timestamp: now + 115 * 60_000, logSource: 'stdout', message: 'too far ahead\n' },
    ];

    await logs.write(stream, input);
    await logs.flush();

    expect(fake.events(group, nameOf(stream)).map((e) => e.message)).toEqual([
      'old but kept\n',
      'ahead but kept\n',
    ]);
    expect(logs.metrics().droppedEvents).toMatchObject({ tooOld: 1, tooNew: 1 });
  });

  it('creates a stream again when retention deleted it', async () => {
    const logs = await store();
    const stream = streamOf();
    await logs.write(stream, events(3, Date.now() - hour));
    await logs.flush();
    fake.deleteLogStream(group, nameOf(stream));

    await logs.write(stream, events(2, Date.now() - hour + 100));
    await logs.flush();

    expect(fake.events(group, nameOf(stream))).toHaveLength(2);
    expect(logs.metrics().droppedEvents.rejected).toBe(0);
  });

  it('retries throttled writes and loses nothing', async () => {
    const logs = await store();
    const stream = streamOf();
    fake.options.throttleEvery = 3;
    const input = events(30, Date.now() - hour);

    for (let k = 0; k < 30; k += 3) {
      await logs.write(stream, input.slice(k, k + 3));
      await logs.flush();
    }

    fake.options.throttleEvery = undefined;
    const page = await logs.poll(stream, { limit: 1000 });

    expect(page.events).toEqual(input);
    expect(logs.metrics().retries).toBeGreaterThan(0);
  });

  it('keeps lines through an outage while the queue has room, and bounds it when not', async () => {
    const logs = await createCloudWatchLogStore({
      client: client(fake),
      logGroup: group,
      retry: fastRetry,
      writer: { flushIntervalMillis: 20, deliveryWaitMillis: 50, maxQueuedEvents: 100 },
    });
    stores.push(logs);
    const stream = streamOf();
    const input = events(150, Date.now() - hour);
    fake.options.failEvery = 1;

    for (let k = 0; k < 150; k += 10) {
      await logs.write(stream, input.slice(k, k + 10));
    }

    expect(logs.metrics()).toMatchObject({ queuedEvents: 100, sentEvents: 0 });
    expect(logs.metrics().droppedEvents.queueFull).toBe(50);
    expect(logs.metrics().retries).toBeGreaterThan(0);

    fake.options.failEvery = undefined;
    await logs.flush();

    expect(fake.events(group, nameOf(stream)).map((e) => e.message)).toEqual(
      input.slice(0, 100).map((e) => e.message),
    );
  });

  it('pages a sparse stream through its empty pages', async () => {
    const logs = await store();
    const stream = streamOf();
    // Gaps of 1 h and then 5 h, read 10 min at a time: up to 30 empty pages in a row.
    const start = Date.now() - 10 * hour;
    const input = [
      ...events(3, start, 60 * 60_000),
      ...events(3, start + 8 * hour, 30 * 60_000),
    ];
    await logs.write(stream, input);
    await logs.flush();
    fake.options.maxScanMillis = 10 * 60_000;

    const ascending = await readAll(logs, stream, { limit: 2 });
    const descending = await readAll(logs, stream, { limit: 2, descending: true });

    expect(ascending.events).toEqual(input);
    expect(descending.events).toEqual([...input].reverse());
    // The 5 h gap needs 30 empty pages: more than one poll may follow, so more polls.
    expect(ascending.polls).toBeGreaterThan(3);
  });

  it('reads events stamped ahead of the clock when no end is given', async () => {
    const logs = await store();
    const stream = streamOf();
    const now = Date.now();
    await logs.write(stream, [
      { timestamp: now - 1_000, logSource: 'stdout', message: 'past\n' },
      { timestamp: now + 30 * 60_000, logSource: 'stdout', message: 'ahead\n' },
    ]);
    await logs.flush();

    const ascending = await logs.poll(stream, { limit: 10 });
    const descending = await logs.poll(stream, { limit: 10, descending: true });

    expect(ascending.events.map((e) => e.message)).toEqual(['past\n', 'ahead\n']);
    expect(descending.events.map((e) => e.message)).toEqual(['ahead\n', 'past\n']);
  });

  it('answers an empty window without asking the service', async () => {
    const logs = await store();
    const stream = streamOf();
    await logs.write(stream, events(3, Date.now() - hour));
    const [t0, t1] = fake.events(group, nameOf(stream)).map((e) => e.timestamp);
    const gets = fake.calls.GetLogEvents ?? 0;

    const ascending = await logs.poll(stream, { limit: 10, startTime: t0, endTime: t1 });
    const descending = await logs.poll(stream, {
      limit: 10,
      startTime: t1,
      endTime: t1,
      descending: true,
    });
    const one = await logs.poll(stream, {
      limit: 10,
      startTime: t0,
      endTime: t1,
      descending: true,
    });

    expect(ascending).toMatchObject({ events: [], nextToken: null });
    expect(descending).toMatchObject({ events: [], nextToken: null });
    expect(fake.calls.GetLogEvents).toBe(gets + 1);
    expect(one.events.map((e) => e.timestamp)).toEqual([t1]);
  });

  it('links each page to the stream in the AWS console', async () => {
    const logs = await store();
    const stream = streamOf('run-x');

    const page = await logs.poll(stream, { limit: 10 });

    expect(page.externalUrl).toBe(
      'https://console.aws.amazon.com/cloudwatch/home?region=eu-west-1' +
        '#logsV2:log-groups/log-group/dstack-run-logs/log-events/' +
        `main$252Frun-x$252F${stream.jobSubmissionId}$252Fjob`,
    );
  });

  it('turns a token the service does not know into a 400', async () => {
    const logs = await store();
    const stream = streamOf();
    await logs.write(stream, events(2, Date.now() - hour));
    await logs.flush();

    await expect(logs.poll(stream, { limit: 10, nextToken: 'garbage' })).rejects.toMatchObject({
      status: 400,
      message: 'Invalid next_token: garbage',
    });
  });
});
