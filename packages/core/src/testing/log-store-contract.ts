import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type {
  LogEvent,
  LogPage,
  LogPollRequest,
  LogStore,
  LogStream,
} from '../ports/log-store.js';

/** A store that buffers writes; the suite flushes it before reading. */
interface FlushableLogStore extends LogStore {
  flush(): Promise<void>;
}

const pageLimits = [1, 7, 1000];

/**
 * The LogStore contract: every adapter runs it against a fresh store from `open`. Stores
 * that buffer writes expose `flush()`, which the suite calls before it reads.
 */
export function runLogStoreContract(name: string, open: () => Promise<LogStore>): void {
  describe(`LogStore contract: ${name}`, () => {
    let store: LogStore;

    beforeEach(async () => {
      store = await open();
    });

    afterEach(async () => {
      await store.close?.();
    });

    async function write(stream: LogStream, events: LogEvent[]): Promise<void> {
      await store.write(stream, events);
      await flush(store);
    }

    it('reads events back in the order written, ascending by default', async () => {
      const stream = newStream();
      const events = makeEvents(20);
      await write(stream, events);

      const page = await store.poll(stream, { limit: 1000 });

      expect(page.events).toEqual(events);
    });

    it('keeps appends to one stream in order across writes', async () => {
      const stream = newStream();
      const events = makeEvents(12);
      await store.write(stream, events.slice(0, 5));
      await store.write(stream, events.slice(5, 9));
      await store.write(stream, events.slice(9));
      await flush(store);

      const page = await store.poll(stream, { limit: 1000 });

      expect(page.events).toEqual(events);
    });

    it('treats start_time as exclusive', async () => {
      const stream = newStream();
      const events = makeEvents(10);
      await write(stream, events);

      const page = await store.poll(stream, { startTime: events[4].timestamp, limit: 1000 });

      expect(page.events).toEqual(events.slice(5));
    });

    it('treats end_time as exclusive when ascending', async () => {
      const stream = newStream();
      const events = makeEvents(10);
      await write(stream, events);

      const page = await store.poll(stream, {
        startTime: events[1].timestamp,
        endTime: events[7].timestamp,
        limit: 1000,
      });

      expect(page.events).toEqual(events.slice(2, 7));
    });

    it('reads newest first when descending', async () => {
      const stream = newStream();
      const events = makeEvents(15);
      await write(stream, events);

      const page = await store.poll(stream, { descending: true, limit: 1000 });

      expect(page.events).toEqual([...events].reverse());
    });

    it('treats end_time as inclusive and start_time as exclusive when descending', async () => {
      const stream = newStream();
      const events = makeEvents(10);
      await write(stream, events);

      const page = await store.poll(stream, {
        descending: true,
        startTime: events[2].timestamp,
        endTime: events[8].timestamp,
        limit: 1000,
      });

      expect(page.events).toEqual(events.slice(3, 9).reverse());
    });

    it('returns the newest events first when a descending page is full', async () => {
      const stream = newStream();
      const events = makeEvents(10);
      await write(stream, events);

      const page = await store.poll(stream, { descending: true, limit: 3 });

      expect(page.events).toEqual(events.slice(7).reverse());
      expect(page.nextToken).not.toBeNull();
    });

    for (const limit of pageLimits) {
      it(`pages ascending with next_token at limit ${limit}, each event once`, async () => {
        const stream = newStream();
        const events = makeEvents(23);
        await write(stream, events);

        const seen = await readAll(store, stream, { limit });

        expect(seen).toEqual(events);
      });

      it(`pages descending with next_token at limit ${limit}, each event once`, async () => {
        const stream = newStream();
        const events = makeEvents(23);
        await write(stream, events);

        const seen = await readAll(store, stream, { limit, descending: true });

        expect(seen).toEqual([...events].reverse());
      });
    }

    it('pages within time bounds without leaving them', async () => {
      const stream = newStream();
      const events = makeEvents(30);
      await write(stream, events);
      const bounds = { startTime: events[3].timestamp, endTime: events[25].timestamp };

      const ascending = await readAll(store, stream, { ...bounds, limit: 4 });
      const descending = await readAll(store, stream, { ...bounds, limit: 4, descending: true });

      expect(ascending).toEqual(events.slice(4, 25));
      expect(descending).toEqual(events.slice(4, 26).reverse());
    });

    it('returns an empty page for a stream that was never written', async () => {
      const stream = newStream();

      const ascending = await store.poll(stream, { limit: 100 });
      const descending = await store.poll(stream, { limit: 100, descending: true });

      expect(ascending).toMatchObject({ events: [], nextToken: null });
      expect(descending).toMatchObject({ events: [], nextToken: null });
    });

    it('keeps the job and runner streams of a submission apart', async () => {
      const job = newStream();
      const runner: LogStream = { ...job, producer: 'runner' };
      const jobEvents = makeEvents(5, 'job');
      const runnerEvents = makeEvents(4, 'runner');
      await store.write(job, jobEvents);
      await store.write(runner, runnerEvents);
      await flush(store);

      const jobPage = await store.poll(job, { limit: 1000 });
      const runnerPage = await store.poll(runner, { limit: 1000 });

      expect(jobPage.events).toEqual(jobEvents);
      expect(runnerPage.events).toEqual(runnerEvents);
    });

    it('keeps streams of different submissions, runs and projects apart', async () => {
      const first = newStream();
      const retry: LogStream = { ...first, jobSubmissionId: randomUUID() };
      const otherRun: LogStream = { ...first, runName: `${first.runName}-2` };
      const otherProject: LogStream = { ...first, projectName: `${first.projectName}x` };
      const streams = [first, retry, otherRun, otherProject];
      const written = streams.map((_, index) => makeEvents(3 + index, `s${index}`));

      for (const [index, stream] of streams.entries()) {
        await store.write(stream, written[index]);
      }

      await flush(store);

      for (const [index, stream] of streams.entries()) {
        const page = await store.poll(stream, { limit: 1000 });
        expect(page.events).toEqual(written[index]);
      }
    });

    it('keeps unicode, control characters and long messages intact', async () => {
      const stream = newStream();
      const base = baseTimestamp();
      const long = longMessage(32 * 1024);
      const messages = [
        'héllo wörld ✓\n',
        '日本語のログ 🚀🔥 and a ZWJ family 👨‍👩‍👧\r\n',
        'tab\tseparated\tvalues and a bell \u0007 and \u001b[31mcolour\u001b[0m',
        'no trailing newline',
        long,
      ];
      const events = messages.map((message, index) => event(base + index, message));
      await write(stream, events);

      const page = await store.poll(stream, { limit: 1000 });

      expect(page.events).toEqual(events);
      expect(Buffer.byteLength(page.events[4].message, 'utf8')).toBe(32 * 1024);
    });
  });
}

/** Follows next_token until the store says there is nothing more, with a bound. */
async function readAll(
  store: LogStore,
  stream: LogStream,
  request: LogPollRequest,
): Promise<LogEvent[]> {
  const seen: LogEvent[] = [];
  const pages: LogPage[] = [];
  let nextToken: string | null = null;

  do {
    const page: LogPage = await store.poll(stream, { ...request, nextToken });
    expect(page.events.length).toBeLessThanOrEqual(request.limit);
    pages.push(page);
    seen.push(...page.events);
    nextToken = page.nextToken;
    expect(pages.length).toBeLessThanOrEqual(100);
  } while (nextToken !== null);

  // Only the last page may be empty: it is how some stores learn that nothing follows.
  for (const page of pages.slice(0, -1)) {
    expect(page.events.length).toBeGreaterThan(0);
  }

  return seen;
}

async function flush(store: LogStore): Promise<void> {
  const flushable = store as Partial<FlushableLogStore>;

  if (typeof flushable.flush === 'function') {
    await flushable.flush();
  }
}

function newStream(): LogStream {
  return {
    projectName: 'main',
    runName: `contract-${randomUUID().slice(0, 8)}`,
    jobSubmissionId: randomUUID(),
    producer: 'job',
  };
}

// An hour ago, so stores that refuse future or very old events (CloudWatch) accept them.
function baseTimestamp(): number {
  return Math.floor(Date.now() / 1000) * 1000 - 3_600_000;
}

function makeEvents(count: number, label = 'line'): LogEvent[] {
  const base = baseTimestamp();
  return Array.from({ length: count }, (_, index) =>
    event(base + index * 37, `${label} ${index}: output\n`),
  );
}

function event(timestamp: number, message: string): LogEvent {
  return { timestamp, logSource: 'stdout', message };
}

// Mixed one-, two-, three- and four-byte characters, cut to exactly `bytes` UTF-8 bytes.
function longMessage(bytes: number): string {
  const unit = 'abc é ж 中 😀 ';
  let text = '';

  while (Buffer.byteLength(text, 'utf8') < bytes - 64) {
    text += unit;
  }

  while (Buffer.byteLength(text, 'utf8') < bytes) {
    text += 'x';
  }

  return text;
}
