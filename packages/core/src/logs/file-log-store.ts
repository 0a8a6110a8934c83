import { appendFile, mkdir, open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { LogTokenError } from '../errors/server-errors.js';
import type {
  LogEvent,
  LogPage,
  LogPollRequest,
  LogStore,
  LogStream,
} from '../ports/log-store.js';
import { parseWireTime, toWireTime } from '../util/time.js';
import { linesForward } from './file-lines.js';
import type { FileLine } from './file-lines.js';

export interface FileLogStoreOptions {
  /** Logs go to `<serverDir>/projects/<project>/logs/<run>/<submission>/<producer>.log`. */
  serverDir: string;
  /** How many line-number-to-offset positions are remembered for ascending tokens. */
  positionCacheSize?: number;
}

const chunkBytes = 256 * 1024;
const timestampField = /^\{\s*"timestamp"\s*:\s*"([^"]+)"/;

/**
 * The default LogStore: JSON lines in the original's files, for a single replica. Ascending
 * tokens count lines and descending tokens are byte offsets, as the original's are, and the
 * store remembers where the tokens it gave out point so the next page does not re-read the
 * file from its start.
 */
export function createFileLogStore(options: FileLogStoreOptions): LogStore {
  const cacheSize = options.positionCacheSize ?? 10_000;
  const positions = new Map<string, number>();
  const writes = new Map<string, Promise<void>>();

  function remember(path: string, lineNumber: number, offset: number): void {
    const key = `${lineNumber}:${path}`;
    positions.delete(key);
    positions.set(key, offset);

    if (positions.size > cacheSize) {
      positions.delete(positions.keys().next().value as string);
    }
  }

  async function write(stream: LogStream, events: readonly LogEvent[]): Promise<void> {
    if (events.length === 0) {
      return;
    }

    const path = logFilePath(options.serverDir, stream);

    if (path === null) {
      throw new Error(`cannot store logs of a stream named ${JSON.stringify(stream)}`);
    }

    const text = events.map(formatLine).join('');
    // Appends to one file run one after another, so events keep the order they came in.
    const previous = writes.get(path) ?? Promise.resolve();
    const current = previous.then(async () => {
      await mkdir(dirname(path), { recursive: true });
      await appendFile(path, text, 'utf8');
    });
    const settled = current.catch(() => undefined);
    writes.set(path, settled);
    void settled.then(() => {
      if (writes.get(path) === settled) {
        writes.delete(path);
      }
    });
    await current;
  }

  async function poll(stream: LogStream, request: LogPollRequest): Promise<LogPage> {
    const token = parseToken(request.nextToken);
    const path = logFilePath(options.serverDir, stream);

    if (path === null || request.limit <= 0) {
      return { events: [], nextToken: null };
    }

    let handle: FileHandle;

    try {
      handle = await open(path, 'r');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        return { events: [], nextToken: null };
      }

      throw error;
    }

    try {
      return request.descending === true
        ? await pollDescending(handle, request, token)
        : await pollAscending(handle, path, request, token ?? 0);
    } finally {
      await handle.close();
    }
  }

  async function pollAscending(
    handle: FileHandle,
    path: string,
    request: LogPollRequest,
    startLine: number,
  ): Promise<LogPage> {
    const { size } = await handle.stat();
    const cached = positions.get(`${startLine}:${path}`);
    const known = cached !== undefined && cached <= size ? cached : undefined;
    const events: LogEvent[] = [];
    let lineNumber = known === undefined ? 0 : startLine;

    for await (const line of linesForward(handle, known ?? 0, size)) {
      if (lineNumber < startLine) {
        lineNumber += 1;
        continue;
      }

      if (events.length === request.limit) {
        remember(path, lineNumber, line.offset);
        return { events, nextToken: String(lineNumber) };
      }

      lineNumber += 1;
      const timestamp = lineTimestamp(line.text);

      if (timestamp === null || isAtOrBefore(timestamp, request.startTime)) {
        continue;
      }

      if (request.endTime !== null && request.endTime !== undefined &&
        timestamp >= request.endTime) {
        break;
      }

      const event = parseEvent(line.text, timestamp);

      if (event !== null) {
        events.push(event);
      }
    }

    return { events, nextToken: null };
  }

  async function close(): Promise<void> {
    await Promise.all(writes.values());
  }

  return { write, poll, close };
}

async function pollDescending(
  handle: FileHandle,
  request: LogPollRequest,
  endOffset: number | null,
): Promise<LogPage> {
  const { size } = await handle.stat();
  const candidates: FileLine[] = [];
  const events: LogEvent[] = [];

  for await (const line of linesBackward(handle, Math.min(endOffset ?? size, size))) {
    const timestamp = lineTimestamp(line.text);

    if (timestamp === null) {
      continue;
    }

    if (request.endTime !== null && request.endTime !== undefined &&
      timestamp > request.endTime) {
      continue;
    }

    if (isAtOrBefore(timestamp, request.startTime)) {
      break;
    }

    const event = parseEvent(line.text, timestamp);

    if (event === null) {
      continue;
    }

    if (events.length === request.limit) {
      // One line more than the page proves there is another page.
      return { events, nextToken: String(candidates[candidates.length - 1].offset) };
    }

    candidates.push(line);
    events.push(event);
  }

  return { events, nextToken: null };
}

/** Where a stream's file lives, or null when a name would leave the logs directory. */
export function logFilePath(serverDir: string, stream: LogStream): string | null {
  const parts = [stream.projectName, stream.runName, stream.jobSubmissionId];

  if (parts.some((part) => part === '' || part === '.' || part === '..' || /[/\\\0]/.test(part))) {
    return null;
  }

  return join(
    serverDir,
    'projects',
    stream.projectName,
    'logs',
    stream.runName,
    stream.jobSubmissionId,
    `${stream.producer}.log`,
  );
}

function formatLine(event: LogEvent): string {
  const timestamp = JSON.stringify(toWireTime(event.timestamp));
  const source = JSON.stringify(event.logSource);
  return `{"timestamp": ${timestamp}, "log_source": ${source}, "message": ` +
    `${JSON.stringify(event.message)}}\n`;
}

function parseToken(token: string | null | undefined): number | null {
  if (token === null || token === undefined) {
    return null;
  }

  if (!/^\d+$/.test(token.trim())) {
    throw new LogTokenError(token);
  }

  const value = Number(token.trim());

  if (!Number.isSafeInteger(value)) {
    throw new LogTokenError(token);
  }

  return value;
}

function isAtOrBefore(timestamp: number, bound: number | null | undefined): boolean {
  return bound !== null && bound !== undefined && timestamp <= bound;
}

/** The timestamp of a line, read without parsing the whole line when it comes first. */
function lineTimestamp(text: string): number | null {
  const match = timestampField.exec(text);

  if (match !== null) {
    return parseWireTime(match[1]);
  }

  try {
    const value = JSON.parse(text) as { timestamp?: unknown };
    return typeof value.timestamp === 'string' ? parseWireTime(value.timestamp) : null;
  } catch {
    return null;
  }
}

function parseEvent(text: string, timestamp: number): LogEvent | null {
  try {
    const value = JSON.parse(text) as { log_source?: unknown; message?: unknown };

    if (typeof value.message !== 'string') {
      return null;
    }

    return {
      timestamp,
      logSource: value.log_source === 'stderr' ? 'stderr' : 'stdout',
      message: value.message,
    };
  } catch {
    return null;
  }
}

/** Whole lines that end before `end`, last first. */
async function* linesBackward(handle: FileHandle, end: number): AsyncGenerator<FileLine> {
  let carry: Buffer = Buffer.alloc(0);
  let position = end;

  while (position > 0) {
    const length = Math.min(chunkBytes, position);
    position -= length;
    const chunk = Buffer.alloc(length);
    await handle.read(chunk, 0, length, position);
    const data = carry.length > 0 ? Buffer.concat([chunk, carry]) : chunk;
    let lineEnd = data.length;

    // A line that ends exactly at `end` has its newline there; drop it before splitting.
    if (carry.length === 0 && position + length === end && data[lineEnd - 1] === 10) {
      lineEnd -= 1;
    }

    let newline = lineEnd > 0 ? data.lastIndexOf(10, lineEnd - 1) : -1;

    while (newline !== -1) {
      if (lineEnd > newline + 1) {
        yield { text: data.toString('utf8', newline + 1, lineEnd), offset: position + newline + 1 };
      }

      lineEnd = newline;
      newline = lineEnd > 0 ? data.lastIndexOf(10, lineEnd - 1) : -1;
    }

    carry = Buffer.from(data.subarray(0, lineEnd));
  }

  if (carry.length > 0) {
    yield { text: carry.toString('utf8'), offset: 0 };
  }
}
