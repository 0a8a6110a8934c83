import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { linesForward } from '../../logs/file-lines.js';

/** One line of a local job's `events.jsonl`, as the runner writes it. */
export interface RunnerEvent {
  t: number;
  p: 'job' | 'runner';
  s: 'stdout' | 'stderr';
  m: string;
}

/** A page of events newer than a cursor. */
export interface EventsPage {
  events: RunnerEvent[];
  /** Byte offset just past the last returned line. */
  endOffset: number;
  hasMore: boolean;
}

const probeBytes = 4096;
const linearScanBytes = 64 * 1024;
const timestampPrefix = /^\{"t":(\d+)/;

/**
 * Reads up to `limit` events with a timestamp above `cursor`. Timestamps grow line by line,
 * so the start is found by bisecting the file instead of reading it from the top; a line
 * still being written (no newline yet) is left for the next read.
 */
export async function readEventsAfter(
  path: string,
  cursor: number,
  limit: number,
  hint?: { cursor: number; offset: number },
): Promise<EventsPage> {
  let handle: FileHandle;

  try {
    handle = await open(path, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      return { events: [], endOffset: 0, hasMore: false };
    }

    throw error;
  }

  try {
    const { size } = await handle.stat();
    const start = hint !== undefined && hint.cursor === cursor && hint.offset <= size
      ? hint.offset
      : await bisect(handle, size, cursor);

    return await readPage(handle, start, size, cursor, limit);
  } finally {
    await handle.close();
  }
}

async function readPage(
  handle: FileHandle,
  start: number,
  size: number,
  cursor: number,
  limit: number,
): Promise<EventsPage> {
  const events: RunnerEvent[] = [];
  let endOffset = start;

  for await (const line of linesForward(handle, start, size)) {
    const event = parseLine(line.text);

    if (event !== null && event.t > cursor) {
      if (events.length === limit) {
        return { events, endOffset, hasMore: true };
      }

      events.push(event);
    }

    endOffset = line.end;
  }

  return { events, endOffset, hasMore: false };
}

function parseLine(line: string): RunnerEvent | null {
  try {
    const value = JSON.parse(line) as RunnerEvent;
    return typeof value.t === 'number' && typeof value.m === 'string' ? value : null;
  } catch {
    return null;
  }
}

/** Finds a line start at or before the first line newer than `cursor`. */
async function bisect(handle: FileHandle, size: number, cursor: number): Promise<number> {
  let low = 0;
  let high = size;

  while (high - low > linearScanBytes) {
    const middle = Math.floor((low + high) / 2);
    const probe = await probeLine(handle, middle, high);

    if (probe === null) {
      break;
    }

    if (probe.timestamp > cursor) {
      high = probe.lineStart;
    } else {
      low = probe.lineStart;
    }
  }

  return low;
}

/** The first whole line that starts after `from` (and before `limit`), with its timestamp. */
async function probeLine(
  handle: FileHandle,
  from: number,
  limit: number,
): Promise<{ lineStart: number; timestamp: number } | null> {
  const buffer = Buffer.alloc(probeBytes);
  let position = from;

  while (position < limit) {
    const { bytesRead } = await handle.read(buffer, 0, probeBytes, position);

    if (bytesRead === 0) {
      return null;
    }

    const newline = buffer.subarray(0, bytesRead).indexOf(10);

    if (newline === -1) {
      position += bytesRead;
      continue;
    }

    const lineStart = position + newline + 1;

    if (lineStart >= limit) {
      return null;
    }

    const head = Buffer.alloc(32);
    const read = await handle.read(head, 0, 32, lineStart);
    const match = timestampPrefix.exec(head.subarray(0, read.bytesRead).toString('latin1'));
    return match === null ? null : { lineStart, timestamp: Number(match[1]) };
  }

  return null;
}
