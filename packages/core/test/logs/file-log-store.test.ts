import { randomUUID } from 'node:crypto';
import { appendFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { createFileLogStore, LogTokenError } from '@dstack/core';
import type { LogEvent, LogStore, LogStream } from '@dstack/core';
import { runLogStoreContract } from '@dstack/core/testing';

const dirs: string[] = [];

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'file-logs-'));
  dirs.push(dir);
  return dir;
}

afterAll(async () => {
  for (const dir of dirs) {
    await rm(dir, { recursive: true, force: true });
  }
});

runLogStoreContract('file', async () => createFileLogStore({ serverDir: await tempDir() }));

const base = Date.UTC(2026, 0, 2, 3, 4, 5);

function stream(producer: 'job' | 'runner' = 'job'): LogStream {
  return { projectName: 'main', runName: 'hello', jobSubmissionId: randomUUID(), producer };
}

function events(count: number, start = base): LogEvent[] {
  return Array.from({ length: count }, (_, index) => ({
    timestamp: start + index,
    logSource: 'stdout' as const,
    message: `line ${index}\n`,
  }));
}

describe('file LogStore', () => {
  let serverDir: string;
  let store: LogStore;

  beforeEach(async () => {
    serverDir = await tempDir();
    store = createFileLogStore({ serverDir });
  });

  function filePath(target: LogStream): string {
    return join(serverDir, 'projects', target.projectName, 'logs', target.runName,
      target.jobSubmissionId, `${target.producer}.log`);
  }

  it('writes JSON lines in the original layout and timestamp format', async () => {
    const target = stream('runner');
    await store.write(target, [
      { timestamp: base, logSource: 'stdout', message: 'whole second\n' },
      { timestamp: base + 123, logSource: 'stderr', message: 'é "quoted"\n' },
    ]);

    const text = await readFile(filePath(target), 'utf8');

    expect(text.split('\n')).toEqual([
      '{"timestamp": "2026-01-02T03:04:05Z", "log_source": "stdout", ' +
        '"message": "whole second\\n"}',
      '{"timestamp": "2026-01-02T03:04:05.123000Z", "log_source": "stderr", ' +
        '"message": "é \\"quoted\\"\\n"}',
      '',
    ]);
  });

  it('reads a file as the original writes it, skipping malformed lines', async () => {
    const target = stream();
    const path = filePath(target);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, [
      '{"timestamp": "2023-11-14T22:13:20Z", "log_source": "stdout", "message": "one\\n"}',
      'not json at all',
      '{"timestamp":"2023-11-14T22:13:20.123456Z","log_source":"stdout","message":"two\\n"}',
      '{"timestamp": "2023-11-14T22:13:21Z", "log_source": "stdout"}',
      '{"log_source": "stdout", "message": "no time"}',
      '{"timestamp": "2023-11-14T22:13:22Z", "log_source": "stdout", "message": "three"}',
      '',
    ].join('\n'));

    const page = await store.poll(target, { limit: 100 });

    expect(page.events).toEqual([
      { timestamp: 1700000000000, logSource: 'stdout', message: 'one\n' },
      { timestamp: 1700000000123, logSource: 'stdout', message: 'two\n' },
      { timestamp: 1700000002000, logSource: 'stdout', message: 'three' },
    ]);
    expect(page.nextToken).toBeNull();
  });

  it('gives an ascending token of lines consumed, only when the page is full and more exist',
    async () => {
      const target = stream();
      await store.write(target, events(10));

      const first = await store.poll(target, { limit: 4, startTime: base + 1 });
      expect(first.events.map((event) => event.message)).toEqual(
        ['line 2\n', 'line 3\n', 'line 4\n', 'line 5\n'],
      );
      expect(first.nextToken).toBe('6');

      const second = await store.poll(target, { limit: 4, startTime: base + 1, nextToken: '6' });
      expect(second.events.map((event) => event.message)).toEqual(
        ['line 6\n', 'line 7\n', 'line 8\n', 'line 9\n'],
      );
      expect(second.nextToken).toBeNull();

      const bounded = await store.poll(target, { limit: 4, endTime: base + 3 });
      expect(bounded.events.map((event) => event.message)).toEqual(
        ['line 0\n', 'line 1\n', 'line 2\n'],
      );
      expect(bounded.nextToken).toBeNull();

      const fresh = createFileLogStore({ serverDir });
      const resumed = await fresh.poll(target, { limit: 2, nextToken: '8' });
      expect(resumed.events.map((event) => event.message)).toEqual(['line 8\n', 'line 9\n']);
    });

  it('gives a descending token of the byte offset where the last returned line starts',
    async () => {
      const target = stream();
      await store.write(target, events(5));
      const text = await readFile(filePath(target), 'utf8');
      const lineStarts = [0];

      for (let index = 0; index < text.length - 1; index += 1) {
        if (text[index] === '\n') {
          lineStarts.push(Buffer.byteLength(text.slice(0, index + 1)));
        }
      }

      const first = await store.poll(target, { limit: 2, descending: true, endTime: base + 3 });
      expect(first.events.map((event) => event.message)).toEqual(['line 3\n', 'line 2\n']);
      expect(first.nextToken).toBe(String(lineStarts[2]));

      const second = await store.poll(target, {
        limit: 2, descending: true, endTime: base + 3, nextToken: first.nextToken,
      });
      expect(second.events.map((event) => event.message)).toEqual(['line 1\n', 'line 0\n']);
      expect(second.nextToken).toBeNull();

      const after = await store.poll(target, { limit: 10, descending: true, startTime: base + 2 });
      expect(after.events.map((event) => event.message)).toEqual(['line 4\n', 'line 3\n']);
    });

  it('refuses a token that is not a non-negative integer', async () => {
    const target = stream();
    await store.write(target, events(3));

    for (const token of ['abc', '-1', '1.5', '']) {
      await expect(store.poll(target, { limit: 1, nextToken: token }))
        .rejects.toBeInstanceOf(LogTokenError);
      await expect(store.poll(target, { limit: 1, nextToken: token, descending: true }))
        .rejects.toThrow(`Invalid next_token: ${token}`);
    }
  });

  it('returns an empty page for a missing file and for names that would leave the directory',
    async () => {
      expect(await store.poll(stream(), { limit: 10 })).toEqual({ events: [], nextToken: null });
      const escaping = { ...stream(), runName: '..' };
      expect(await store.poll(escaping, { limit: 10 })).toEqual({ events: [], nextToken: null });
      await expect(store.write(escaping, events(1))).rejects.toThrow();
    });

  it('finishes the writes in flight before close resolves', async () => {
    const target = stream();
    const writes = [store.write(target, events(3)), store.write(target, events(2, base + 10))];

    await store.close?.();

    expect((await readFile(filePath(target), 'utf8')).trim().split('\n')).toHaveLength(5);
    await Promise.all(writes);
  });

  it('does not return a line that is still being written', async () => {
    const target = stream();
    await store.write(target, events(2));
    await appendFile(filePath(target), '{"timestamp": "2026-01-02T03:04:06Z", "log_');

    const page = await store.poll(target, { limit: 1000 });

    expect(page.events).toHaveLength(2);
  });

  it('pages through 60,000 lines quickly, each line once', async () => {
    const target = stream();
    const count = 60_000;
    const all = events(count).map((event, index) => ({
      ...event,
      message: `row ${index} ${'x'.repeat(index % 300)}\n`,
    }));

    for (let start = 0; start < count; start += 10_000) {
      await store.write(target, all.slice(start, start + 10_000));
    }

    const started = performance.now();
    const seen: LogEvent[] = [];
    let nextToken: string | null = null;
    let pages = 0;

    do {
      const page = await store.poll(target, { limit: 1000, nextToken });
      seen.push(...page.events);
      nextToken = page.nextToken;
      pages += 1;
    } while (nextToken !== null);

    const ascendingMillis = performance.now() - started;
    expect(pages).toBe(60);
    expect(seen).toEqual(all);

    const back: LogEvent[] = [];
    nextToken = null;

    do {
      const page = await store.poll(target, { limit: 1000, nextToken, descending: true });
      back.push(...page.events);
      nextToken = page.nextToken;
    } while (nextToken !== null);

    expect(back).toEqual([...all].reverse());
    // Re-reading the file from its start for each page would take several times longer.
    expect(ascendingMillis).toBeLessThan(3000);
  });
});
