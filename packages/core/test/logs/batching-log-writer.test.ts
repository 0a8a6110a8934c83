import {
  backoffDelayMillis,
  createBatchingLogWriter,
  resolveBackoffPolicy,
  retryWithBackoff,
  splitUtf8,
  type BatchingLogWriterOptions,
  type LogEvent,
  type LogSendResult,
  type LogStream,
  type Logger,
} from '@dstack/core';
import { afterEach, describe, expect, it } from 'vitest';

const stream: LogStream = {
  projectName: 'main',
  runName: 'run-1',
  jobSubmissionId: '3f1c1d52-8f8e-4c47-9b1e-6a7f0f4d9e01',
  producer: 'job',
};

const recent = Date.now() - 60_000;

function events(count: number, from = 0, message = (i: number) => `line ${i}\n`): LogEvent[] {
  return Array.from({ length: count }, (_, k) => ({
    timestamp: recent + from + k,
    logSource: 'stdout' as const,
    message: message(from + k),
  }));
}

interface Sent {
  stream: LogStream;
  events: LogEvent[];
}

/** A sender that records batches and answers from a script, then with success. */
function recordingSender(script: LogSendResult[] = []) {
  const sent: Sent[] = [];
  const attempts: Sent[] = [];

  const send = async (target: LogStream, batch: LogEvent[]): Promise<LogSendResult> => {
    attempts.push({ stream: target, events: batch });
    const result = script.shift() ?? { ok: true };

    if (result.ok) {
      sent.push({ stream: target, events: batch });
    }

    return result;
  };

  return { send, sent, attempts };
}

function recordingLogger() {
  const lines: { level: string; fields: object; message?: string }[] = [];
  const logAt =
    (level: string) =>
    (fields: object | string, message?: string): void => {
      const line =
        typeof fields === 'string' ? { fields: {}, message: fields } : { fields, message };
      lines.push({ level, ...line });
    };
  const logger: Logger = {
    error: logAt('error'),
    warn: logAt('warn'),
    info: logAt('info'),
    debug: logAt('debug'),
    child: () => logger,
  };

  return { logger, lines };
}

const writers: { close(): Promise<void> }[] = [];

// Writes only queue unless a test asks them to wait, so batching and flushing show.
function writer(options: BatchingLogWriterOptions) {
  const created = createBatchingLogWriter({
    flushIntervalMillis: 60_000,
    deliveryWaitMillis: 0,
    ...options,
  });
  writers.push(created);
  return created;
}

afterEach(async () => {
  await Promise.all(writers.splice(0).map((w) => w.close()));
});

const fastRetry = { initialDelayMillis: 5, maxDelayMillis: 20 };

describe('batching log writer', () => {
  it('sends a full batch at once and the rest on flush', async () => {
    const { send, sent } = recordingSender();
    const w = writer({ send, limits: { maxEvents: 10, maxBytes: 1_000_000 } });

    w.write(stream, events(25));
    await until(() => sent.length === 2);

    expect(sent.map((b) => b.events.length)).toEqual([10, 10]);

    await w.flush();

    expect(sent.map((b) => b.events.length)).toEqual([10, 10, 5]);
    expect(sent.flatMap((b) => b.events)).toEqual(events(25));
    expect(w.metrics()).toMatchObject({ sentEvents: 25, sentBatches: 3, queuedEvents: 0 });
  });

  it('sends a partial batch when the interval passes', async () => {
    const { send, sent } = recordingSender();
    const w = writer({
      send,
      limits: { maxEvents: 100, maxBytes: 1_000_000 },
      flushIntervalMillis: 30,
    });

    w.write(stream, events(3));

    expect(sent).toHaveLength(0);

    await until(() => sent.length === 1);

    expect(sent[0].events).toEqual(events(3));
  });

  it('sends what is queued when it closes, then refuses writes', async () => {
    const { send, sent } = recordingSender();
    const w = writer({ send, limits: { maxEvents: 100, maxBytes: 1_000_000 } });
    w.write(stream, events(4));

    await w.close();

    expect(sent.flatMap((b) => b.events)).toEqual(events(4));
    expect(() => w.write(stream, events(1))).toThrow('The log writer is closed');
  });

  it('keeps every batch within the byte limit, counting the per-event overhead', async () => {
    const { send, sent } = recordingSender();
    const limits = { maxEvents: 10_000, maxBytes: 1_000, eventOverheadBytes: 26 };
    const w = writer({ send, limits });
    const input = events(100, 0, (i) => `message number ${String(i).padStart(4, '0')} ...\n`);

    w.write(stream, input);
    await w.flush();

    for (const batch of sent) {
      const bytes = batch.events.reduce((sum, e) => sum + Buffer.byteLength(e.message) + 26, 0);
      expect(bytes).toBeLessThanOrEqual(1_000);
    }

    // 24 message bytes + 26 per event: exactly 20 fit in 1,000 bytes.
    expect(sent[0].events).toHaveLength(20);
    expect(sent.flatMap((b) => b.events)).toEqual(input);
  });

  it('keeps a batch within its time span and sorts events stably', async () => {
    const { send, sent } = recordingSender();
    const { logger, lines } = recordingLogger();
    const day = 24 * 3_600_000;
    const w = writer({
      send,
      logger,
      limits: { maxEvents: 100, maxBytes: 1_000_000, maxSpanMillis: day },
    });
    const t = Date.now() - 3 * day;
    const input: LogEvent[] = [
      { timestamp: t + 5, logSource: 'stdout', message: 'c' },
      { timestamp: t, logSource: 'stdout', message: 'a' },
      { timestamp: t + 5, logSource: 'stdout', message: 'd' },
      { timestamp: t + 1, logSource: 'stdout', message: 'b' },
      { timestamp: t + day, logSource: 'stdout', message: 'e' },
      { timestamp: t + day + 10, logSource: 'stdout', message: 'f' },
    ];

    w.write(stream, input);
    await w.flush();

    expect(sent.map((b) => b.events.map((e) => e.message).join(''))).toEqual(['abcd', 'ef']);
    expect(lines).toContainEqual(
      expect.objectContaining({ level: 'error', message: 'log events out of order; sorting them' }),
    );
  });

  it('splits an event larger than one event may be, and counts it', async () => {
    const { send, sent } = recordingSender();
    const limits = {
      maxEvents: 10_000,
      maxBytes: 1_048_576,
      eventOverheadBytes: 26,
      maxEventBytes: 262_144,
    };
    const w = writer({ send, limits });
    const big = 'ж€😀x'.repeat(30_000);

    w.write(stream, [{ timestamp: recent, logSource: 'stdout', message: big }]);
    await w.flush();
    const pieces = sent.flatMap((b) => b.events);

    expect(Buffer.byteLength(big)).toBe(300_000);
    expect(pieces).toHaveLength(2);
    expect(pieces.map((p) => p.message).join('')).toBe(big);
    expect(pieces.every((p) => Buffer.byteLength(p.message) + 26 <= 262_144)).toBe(true);
    expect(pieces.every((p) => p.timestamp === recent)).toBe(true);
    expect(w.metrics().splitEvents).toBe(1);
  });

  it('drops events too old, too far ahead or empty, and counts them', async () => {
    const { send, sent } = recordingSender();
    const { logger, lines } = recordingLogger();
    const now = 1_800_000_000_000;
    const w = writer({
      send,
      logger,
      now: () => now,
      limits: {
        maxEvents: 100,
        maxBytes: 1_000_000,
        maxAgeMillis: 1_000,
        maxFutureMillis: 500,
        dropEmptyMessages: true,
      },
    });

    w.write(stream, [
      { timestamp: now - 1_001, logSource: 'stdout', message: 'old' },
      { timestamp: now - 1_000, logSource: 'stdout', message: 'kept 1' },
      { timestamp: now + 1, logSource: 'stdout', message: '' },
      { timestamp: now + 500, logSource: 'stdout', message: 'kept 2' },
      { timestamp: now + 501, logSource: 'stdout', message: 'ahead' },
    ]);
    await w.close();

    expect(sent.flatMap((b) => b.events.map((e) => e.message))).toEqual(['kept 1', 'kept 2']);
    expect(w.metrics().droppedEvents).toMatchObject({ tooOld: 1, tooNew: 1, empty: 1 });
    const warn = lines.find((l) => l.level === 'warn');
    expect(warn?.message).toBe('log events dropped');
    expect(warn?.fields).toMatchObject({ dropped: { tooOld: 1, tooNew: 1, empty: 1 } });
  });

  it('retries a retryable failure with backoff and delivers each event once', async () => {
    const throttled: LogSendResult = { ok: false, retryable: true, error: new Error('Throttling') };
    const { send, sent, attempts } = recordingSender([throttled, throttled]);
    const w = writer({ send, limits: { maxEvents: 5, maxBytes: 1_000_000 }, retry: fastRetry });

    w.write(stream, events(12));
    await w.flush();

    expect(attempts.length).toBe(5);
    expect(sent.flatMap((b) => b.events)).toEqual(events(12));
    expect(w.metrics()).toMatchObject({ retries: 2, sentEvents: 12 });
  });

  it('drops a batch the service rejects for good, logs it and goes on', async () => {
    const rejected: LogSendResult = { ok: false, retryable: false, error: new Error('Invalid') };
    const { send, sent } = recordingSender([rejected]);
    const { logger, lines } = recordingLogger();
    const w = writer({ send, logger, limits: { maxEvents: 5, maxBytes: 1_000_000 } });

    w.write(stream, events(10));
    await w.flush();

    expect(sent.flatMap((b) => b.events)).toEqual(events(5, 5));
    expect(w.metrics().droppedEvents.rejected).toBe(5);
    expect(lines).toContainEqual(
      expect.objectContaining({ level: 'error', message: 'log batch rejected by the log service' }),
    );
  });

  it('loses nothing through an outage while the queue has room', async () => {
    let down = true;
    const sent: LogEvent[] = [];
    const send = async (_: LogStream, batch: LogEvent[]): Promise<LogSendResult> => {
      if (down) {
        return { ok: false, retryable: true, error: new Error('503') };
      }

      sent.push(...batch);
      return { ok: true };
    };
    const w = writer({
      send,
      limits: { maxEvents: 50, maxBytes: 1_000_000 },
      maxQueuedEvents: 1_000,
      retry: fastRetry,
      flushIntervalMillis: 10,
    });

    for (let k = 0; k < 10; k += 1) {
      w.write(stream, events(90, k * 90));
      await sleep(5);
    }

    expect(w.metrics().queuedEvents).toBe(900);

    down = false;
    await w.flush();

    expect(sent).toEqual(events(900));
    expect(w.metrics().droppedEvents.queueFull).toBe(0);
    expect(w.metrics().retries).toBeGreaterThan(0);
  });

  it('bounds its memory when the queue is full, and says what it dropped', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const sent: LogEvent[] = [];
    const send = async (_: LogStream, batch: LogEvent[]): Promise<LogSendResult> => {
      await gate;
      sent.push(...batch);
      return { ok: true };
    };
    const { logger, lines } = recordingLogger();
    const w = writer({
      send,
      logger,
      limits: { maxEvents: 10, maxBytes: 1_000_000 },
      maxQueuedEvents: 25,
      maxQueuedBytes: 10_000,
    });

    w.write(stream, events(20));
    w.write(stream, events(20, 20));

    expect(w.metrics().queuedEvents).toBe(25);
    expect(w.metrics().droppedEvents.queueFull).toBe(15);

    const warn = lines.find((l) => l.message === 'log events dropped');
    expect(warn?.fields).toMatchObject({ dropped: { queueFull: 15 }, queued: 25 });

    release();
    await w.flush();

    expect(sent).toEqual(events(25));
  });

  it('bounds the queue by bytes too', async () => {
    const send = async (): Promise<LogSendResult> => new Promise(() => undefined);
    const w = writer({
      send,
      limits: { maxEvents: 1_000, maxBytes: 1_000_000 },
      maxQueuedBytes: 1_000,
      shutdownTimeoutMillis: 20,
    });

    w.write(stream, events(10, 0, () => 'x'.repeat(300)));

    expect(w.metrics()).toMatchObject({ queuedEvents: 3, queuedBytes: 900 });
    expect(w.metrics().droppedEvents.queueFull).toBe(7);
    expect(w.metrics().droppedBytes).toBe(2_100);
  });

  it('gives up at the shutdown deadline and counts what it left', async () => {
    const send = async (): Promise<LogSendResult> => ({
      ok: false,
      retryable: true,
      error: new Error('ThrottlingException'),
    });
    const w = writer({
      send,
      limits: { maxEvents: 5, maxBytes: 1_000_000 },
      retry: fastRetry,
      shutdownTimeoutMillis: 100,
    });
    w.write(stream, events(12));

    await w.close();

    expect(w.metrics().droppedEvents.shutdown).toBe(12);
    expect(w.metrics().queuedEvents).toBe(0);
  });

  it('resolves a waiting write once its events are sent, before the interval', async () => {
    const { send, sent } = recordingSender();
    const w = writer({
      send,
      limits: { maxEvents: 4, maxBytes: 1_000_000 },
      deliveryWaitMillis: 5_000,
    });
    const started = Date.now();

    await w.write(stream, events(10));

    expect(sent.flatMap((b) => b.events)).toEqual(events(10));
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('stops holding writers once a stream fails, and keeps their events queued', async () => {
    let down = true;
    const sent: LogEvent[] = [];
    const send = async (_: LogStream, batch: LogEvent[]): Promise<LogSendResult> => {
      if (down) {
        return { ok: false, retryable: true, error: new Error('ThrottlingException') };
      }

      sent.push(...batch);
      return { ok: true };
    };
    const w = writer({
      send,
      limits: { maxEvents: 100, maxBytes: 1_000_000 },
      deliveryWaitMillis: 100,
      retry: fastRetry,
    });

    const first = Date.now();
    await w.write(stream, events(3));
    const waited = Date.now() - first;
    const second = Date.now();
    await w.write(stream, events(3, 3));
    const waitedAgain = Date.now() - second;

    expect(waited).toBeGreaterThanOrEqual(90);
    expect(waitedAgain).toBeLessThan(50);
    expect(w.metrics().queuedEvents).toBe(6);

    down = false;
    await w.flush();

    expect(sent).toEqual(events(6));
  });

  it('keeps streams apart and sends each stream in order', async () => {
    const { send, sent } = recordingSender();
    const runner: LogStream = { ...stream, producer: 'runner' };
    const w = writer({ send, limits: { maxEvents: 3, maxBytes: 1_000_000 } });

    w.write(stream, events(7));
    w.write(runner, events(4, 100));
    await w.flush();

    const of = (s: LogStream) =>
      sent.filter((b) => b.stream.producer === s.producer).flatMap((b) => b.events);
    expect(of(stream)).toEqual(events(7));
    expect(of(runner)).toEqual(events(4, 100));
  });
});

describe('backoff', () => {
  it('grows exponentially up to the cap, with jitter taking off at most its fraction', () => {
    const policy = resolveBackoffPolicy({ initialDelayMillis: 100, maxDelayMillis: 1_000 });

    expect([1, 2, 3, 4, 5].map((a) => backoffDelayMillis(a, policy, () => 0))).toEqual([
      100, 200, 400, 800, 1_000,
    ]);
    expect(backoffDelayMillis(3, policy, () => 1)).toBe(200);
    expect(backoffDelayMillis(3, policy, () => 0.5)).toBe(300);
  });

  it('retries a call while the error is retryable and attempts remain', async () => {
    let calls = 0;
    const call = async () => {
      calls += 1;

      if (calls < 3) {
        throw new Error('busy');
      }

      return 'done';
    };

    await expect(
      retryWithBackoff(call, { maxAttempts: 3, isRetryable: () => true, ...fastRetry }),
    ).resolves.toBe('done');

    calls = 0;
    await expect(
      retryWithBackoff(call, { maxAttempts: 2, isRetryable: () => true, ...fastRetry }),
    ).rejects.toThrow('busy');

    calls = 0;
    await expect(
      retryWithBackoff(call, { maxAttempts: 5, isRetryable: () => false }),
    ).rejects.toThrow('busy');
    expect(calls).toBe(1);
  });
});

describe('splitUtf8', () => {
  it('never cuts a code point and joins back to the text', () => {
    const text = 'a😀b€c'.repeat(10);
    const pieces = splitUtf8(text, 7);

    expect(pieces.join('')).toBe(text);
    expect(pieces.every((p) => Buffer.byteLength(p) <= 7)).toBe(true);
    expect(splitUtf8('', 10)).toEqual(['']);
  });
});

async function until(check: () => boolean, timeoutMillis = 2_000): Promise<void> {
  const start = Date.now();

  while (!check()) {
    if (Date.now() - start > timeoutMillis) {
      throw new Error('condition not met in time');
    }

    await sleep(5);
  }
}

function sleep(millis: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, millis));
}
