import { LogTokenError } from '../errors/index.js';
import type {
  LogEvent,
  LogPage,
  LogPollRequest,
  LogStore,
  LogStream,
} from '../ports/log-store.js';
import { logStreamKey } from './log-stream-names.js';

/**
 * A LogStore that keeps every stream in memory, with the file store's poll semantics and a
 * cursor that is the index of the next event to read. For tests and embedded demos.
 */
export function createMemoryLogStore(): LogStore {
  const streams = new Map<string, LogEvent[]>();

  return {
    async write(stream: LogStream, events: readonly LogEvent[]): Promise<void> {
      const key = logStreamKey(stream);
      const list = streams.get(key) ?? [];
      list.push(...events.map((event) => ({ ...event })));
      streams.set(key, list);
    },

    async poll(stream: LogStream, request: LogPollRequest): Promise<LogPage> {
      const list = streams.get(logStreamKey(stream)) ?? [];
      const position = parseIndexToken(request.nextToken, list.length);

      return request.descending
        ? pollDescending(list, request, position ?? list.length)
        : pollAscending(list, request, position ?? 0);
    },
  };
}

function pollAscending(list: LogEvent[], request: LogPollRequest, from: number): LogPage {
  const events: LogEvent[] = [];
  let index = from;

  for (; index < list.length && events.length < request.limit; index += 1) {
    const event = list[index];

    if (request.startTime != null && event.timestamp <= request.startTime) {
      continue;
    }

    if (request.endTime != null && event.timestamp >= request.endTime) {
      return { events, nextToken: null };
    }

    events.push({ ...event });
  }

  const more = events.length === request.limit && index < list.length;
  return { events, nextToken: more ? String(index) : null };
}

function pollDescending(list: LogEvent[], request: LogPollRequest, before: number): LogPage {
  const events: LogEvent[] = [];
  let index = before - 1;

  for (; index >= 0 && events.length < request.limit; index -= 1) {
    const event = list[index];

    if (request.endTime != null && event.timestamp > request.endTime) {
      continue;
    }

    if (request.startTime != null && event.timestamp <= request.startTime) {
      return { events, nextToken: null };
    }

    events.push({ ...event });
  }

  const more = events.length === request.limit && index >= 0;
  return { events, nextToken: more ? String(index + 1) : null };
}

function parseIndexToken(token: string | null | undefined, length: number): number | null {
  if (token == null || token === '') {
    return null;
  }

  if (!/^\d+$/.test(token) || Number(token) > length) {
    throw new LogTokenError(token);
  }

  return Number(token);
}
