import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One stored event, as CloudWatch keeps it. */
export interface FakeLogEvent {
  timestamp: number;
  message: string;
  ingestionTime: number;
}

export interface FakeCloudWatchOptions {
  /** Answer one request in N with ThrottlingException (400). */
  throttleEvery?: number;
  /** Answer one request in N with ServiceUnavailableException (503). */
  failEvery?: number;
  /** Answer every request with AccessDeniedException, as for a role without permission. */
  denyAll?: boolean;
  /**
   * A GetLogEvents call looks at most this much time past its cursor, so that a sparse
   * stream gives empty pages with a moved token, as the real service does.
   */
  maxScanMillis?: number;
}

/** A CloudWatch Logs server on loopback speaking the JSON 1.1 protocol of the real one. */
export interface FakeCloudWatchLogs {
  /** The endpoint to give the SDK client. */
  url: string;
  createLogGroup(name: string): void;
  deleteLogStream(group: string, stream: string): void;
  streamNames(group: string): string[];
  events(group: string, stream: string): FakeLogEvent[];
  /** How many requests each operation received. */
  calls: Record<string, number>;
  /** Every PutLogEvents body, for checking batch limits. */
  puts: { logStreamName: string; logEvents: { timestamp: number; message: string }[] }[];
  options: FakeCloudWatchOptions;
  close(): Promise<void>;
}

class AwsError extends Error {
  constructor(
    readonly type: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

interface Stream {
  creationTime: number;
  events: FakeLogEvent[];
}

const day = 24 * 3_600_000;
const maxBatchBytes = 1_048_576;
const maxEventBytes = 262_144;
const eventOverheadBytes = 26;

/** Starts the fake on 127.0.0.1 with a free port. */
export async function startFakeCloudWatchLogs(
  options: FakeCloudWatchOptions = {},
): Promise<FakeCloudWatchLogs> {
  const groups = new Map<string, Map<string, Stream>>();
  const calls: Record<string, number> = {};
  const puts: FakeCloudWatchLogs['puts'] = [];
  let requestCount = 0;

  function group(name: unknown): Map<string, Stream> {
    const found = groups.get(String(name));

    if (found === undefined) {
      throw new AwsError('ResourceNotFoundException', 'The specified log group does not exist.');
    }

    return found;
  }

  function stream(groupName: unknown, streamName: unknown): Stream {
    const found = group(groupName).get(String(streamName));

    if (found === undefined) {
      throw new AwsError('ResourceNotFoundException', 'The specified log stream does not exist.');
    }

    return found;
  }

  const operations: Record<string, (input: Record<string, unknown>) => unknown> = {
    DescribeLogStreams(input) {
      const streams = group(input.logGroupName);
      const limit = Number(input.limit ?? 50);

      if (!Number.isInteger(limit) || limit < 1 || limit > 50) {
        throw new AwsError('InvalidParameterException', 'limit must be between 1 and 50');
      }

      const prefix = String(input.logStreamNamePrefix ?? '');
      const names = [...streams.keys()].filter((name) => name.startsWith(prefix)).sort();
      const offset = input.nextToken === undefined ? 0 : Number(input.nextToken);
      const page = names.slice(offset, offset + limit);
      const more = offset + limit < names.length;

      return {
        logStreams: page.map((name) => ({
          logStreamName: name,
          creationTime: streams.get(name)?.creationTime,
          arn: `arn:aws:logs:us-east-1:000000000000:log-group:${String(input.logGroupName)}`,
          storedBytes: 0,
        })),
        ...(more ? { nextToken: String(offset + limit) } : {}),
      };
    },

    CreateLogStream(input) {
      const streams = group(input.logGroupName);
      const name = String(input.logStreamName ?? '');

      if (name === '' || name.length > 512 || /[:*]/.test(name)) {
        throw new AwsError('InvalidParameterException', `Invalid log stream name: ${name}`);
      }

      if (streams.has(name)) {
        throw new AwsError(
          'ResourceAlreadyExistsException',
          'The specified log stream already exists',
        );
      }

      streams.set(name, { creationTime: Date.now(), events: [] });
      return {};
    },

    PutLogEvents(input) {
      const target = stream(input.logGroupName, input.logStreamName);
      const events = (input.logEvents ?? []) as { timestamp: number; message: string }[];
      checkBatch(events);
      puts.push({ logStreamName: String(input.logStreamName), logEvents: events });

      const now = Date.now();
      let tooOldLogEventEndIndex: number | undefined;
      let tooNewLogEventStartIndex: number | undefined;

      for (const [index, event] of events.entries()) {
        if (event.timestamp < now - 14 * day) {
          tooOldLogEventEndIndex = index + 1;
          continue;
        }

        if (event.timestamp > now + 2 * 3_600_000) {
          tooNewLogEventStartIndex ??= index;
          continue;
        }

        insertSorted(target.events, { ...event, ingestionTime: now });
      }

      const rejected = {
        ...(tooOldLogEventEndIndex !== undefined ? { tooOldLogEventEndIndex } : {}),
        ...(tooNewLogEventStartIndex !== undefined ? { tooNewLogEventStartIndex } : {}),
      };

      return Object.keys(rejected).length > 0 ? { rejectedLogEventsInfo: rejected } : {};
    },

    GetLogEvents(input) {
      const target = stream(input.logGroupName, input.logStreamName);
      return getLogEvents(target.events, input, options.maxScanMillis);
    },
  };

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const body = await readBody(request);
    const target = String(request.headers['x-amz-target'] ?? '');
    const operation = target.startsWith('Logs_20140328.') ? target.slice(14) : '';
    requestCount += 1;
    calls[operation] = (calls[operation] ?? 0) + 1;

    try {
      if (request.method !== 'POST' || request.url !== '/') {
        throw new AwsError('UnknownOperationException', 'Unknown operation', 404);
      }

      if (request.headers['content-type'] !== 'application/x-amz-json-1.1') {
        throw new AwsError('SerializationException', 'Expected application/x-amz-json-1.1');
      }

      if (!String(request.headers.authorization ?? '').startsWith('AWS4-HMAC-SHA256 ')) {
        throw new AwsError('MissingAuthenticationTokenException', 'Missing authentication', 403);
      }

      const handler = operations[operation];

      if (handler === undefined) {
        throw new AwsError('UnknownOperationException', `Unknown operation ${target}`);
      }

      if (options.denyAll) {
        throw new AwsError(
          'AccessDeniedException',
          `User is not authorized to perform: logs:${operation}`,
        );
      }

      if (options.throttleEvery && requestCount % options.throttleEvery === 0) {
        throw new AwsError('ThrottlingException', 'Rate exceeded');
      }

      if (options.failEvery && requestCount % options.failEvery === 0) {
        throw new AwsError('ServiceUnavailableException', 'The service is unavailable', 503);
      }

      const output = handler(JSON.parse(body === '' ? '{}' : body) as Record<string, unknown>);
      send(response, 200, output);
    } catch (error) {
      const aws =
        error instanceof AwsError
          ? error
          : new AwsError('InternalFailure', String(error), 500);
      response.setHeader('x-amzn-ErrorType', `${aws.type}:`);
      send(response, aws.status, { __type: aws.type, message: aws.message });
    }
  }

  const server = createServer((request, response) => {
    void handle(request, response);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    puts,
    options,
    createLogGroup(name) {
      groups.set(name, groups.get(name) ?? new Map());
    },
    deleteLogStream(groupName, streamName) {
      group(groupName).delete(streamName);
    },
    streamNames(groupName) {
      return [...group(groupName).keys()].sort();
    },
    events(groupName, streamName) {
      return stream(groupName, streamName).events.map((event) => ({ ...event }));
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function checkBatch(events: { timestamp: number; message: string }[]): void {
  if (events.length < 1 || events.length > 10_000) {
    throw new AwsError('InvalidParameterException', 'logEvents must hold 1 to 10000 events');
  }

  let bytes = 0;

  for (const [index, event] of events.entries()) {
    const size = Buffer.byteLength(event.message ?? '', 'utf8') + eventOverheadBytes;
    bytes += size;

    if (typeof event.message !== 'string' || event.message.length === 0) {
      throw new AwsError('InvalidParameterException', 'Log event message must not be empty');
    }

    if (size > maxEventBytes) {
      throw new AwsError('InvalidParameterException', 'Log event too large');
    }

    if (index > 0 && event.timestamp < events[index - 1].timestamp) {
      throw new AwsError(
        'InvalidParameterException',
        'Log events in a single PutLogEvents request must be in chronological order.',
      );
    }
  }

  if (bytes > maxBatchBytes) {
    throw new AwsError('InvalidParameterException', 'Upload too large: the batch exceeds 1 MB');
  }

  if (events[events.length - 1].timestamp - events[0].timestamp > day) {
    throw new AwsError(
      'InvalidParameterException',
      'The batch of log events in a single PutLogEvents request cannot span more than 24 hours.',
    );
  }
}

interface Cursor {
  forward: boolean;
  /** Forward: the next index to read. Backward: the index just past the next read. */
  index: number;
  /** Where the next scan starts in time, for sparse paging. */
  scanMillis: number;
}

function getLogEvents(
  all: FakeLogEvent[],
  input: Record<string, unknown>,
  maxScanMillis: number | undefined,
): unknown {
  const startTime = input.startTime === undefined ? -Infinity : Number(input.startTime);
  const endTime = input.endTime === undefined ? Infinity : Number(input.endTime);
  const limit = Number(input.limit ?? 10_000);

  if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) {
    throw new AwsError('InvalidParameterException', 'limit must be between 1 and 10000');
  }

  const given = input.nextToken === undefined ? null : decodeToken(String(input.nextToken));

  if (given !== null && input.startFromHead === true && !given.forward) {
    throw new AwsError('InvalidParameterException', 'The specified nextToken is invalid.');
  }

  const forward = given?.forward ?? input.startFromHead === true;
  // The window: startTime inclusive, endTime exclusive, as the real service documents.
  const first = lowerBound(all, startTime);
  const last = lowerBound(all, endTime);

  if (forward) {
    const from = Math.max(first, given?.index ?? first);
    const scanFrom =
      given?.scanMillis ?? (Number.isFinite(startTime) ? startTime : (all[from]?.timestamp ?? 0));
    const scanTo = maxScanMillis === undefined ? Infinity : scanFrom + maxScanMillis;
    const page: FakeLogEvent[] = [];
    let index = from;

    while (index < last && page.length < limit && all[index].timestamp < scanTo) {
      page.push(all[index]);
      index += 1;
    }

    if (page.length === 0 && from >= last && given !== null) {
      return tokens(page, given, { forward: false, index: from, scanMillis: scanFrom });
    }

    const nextScan = page.length > 0 ? page[page.length - 1].timestamp : scanTo;
    return tokens(
      page,
      { forward: true, index, scanMillis: Math.min(nextScan, scanTo) },
      { forward: false, index: from, scanMillis: scanFrom },
    );
  }

  const before = Math.min(last, given?.index ?? last);
  const scanFrom =
    given?.scanMillis ??
    (Number.isFinite(endTime) ? endTime : (all[before - 1]?.timestamp ?? 0) + 1);
  const scanTo = maxScanMillis === undefined ? -Infinity : scanFrom - maxScanMillis;
  let index = before;

  while (index > first && before - index < limit && all[index - 1].timestamp >= scanTo) {
    index -= 1;
  }

  const page = all.slice(index, before);

  if (page.length === 0 && before <= first && given !== null) {
    return tokens(page, { forward: true, index: before, scanMillis: scanFrom }, given);
  }

  const nextScan = page.length > 0 ? page[0].timestamp : scanTo;
  return tokens(
    page,
    { forward: true, index: before, scanMillis: scanFrom },
    { forward: false, index, scanMillis: Math.max(nextScan, scanTo) },
  );
}

function tokens(page: FakeLogEvent[], forward: Cursor, backward: Cursor): unknown {
  return {
    events: page.map((event) => ({ ...event })),
    nextForwardToken: encodeToken({ ...forward, forward: true }),
    nextBackwardToken: encodeToken({ ...backward, forward: false }),
  };
}

function encodeToken(cursor: Cursor): string {
  const scan = Number.isFinite(cursor.scanMillis) ? String(cursor.scanMillis) : 'x';
  return `${cursor.forward ? 'f' : 'b'}/${String(cursor.index).padStart(20, '0')}/${scan}/s`;
}

function decodeToken(token: string): Cursor {
  const match = /^([fb])\/(\d{20})\/(-?\d+|x)\/s$/.exec(token);

  if (match === null) {
    throw new AwsError('InvalidParameterException', 'The specified nextToken is invalid.');
  }

  const forward = match[1] === 'f';
  const scan = match[3] === 'x' ? (forward ? -Infinity : Infinity) : Number(match[3]);
  return { forward, index: Number(match[2]), scanMillis: scan };
}

function lowerBound(events: FakeLogEvent[], timestamp: number): number {
  let low = 0;
  let high = events.length;

  while (low < high) {
    const middle = (low + high) >> 1;

    if (events[middle].timestamp < timestamp) {
      low = middle + 1;
    } else {
      high = middle;
    }
  }

  return low;
}

function insertSorted(events: FakeLogEvent[], event: FakeLogEvent): void {
  let index = events.length;

  while (index > 0 && events[index - 1].timestamp > event.timestamp) {
    index -= 1;
  }

  events.splice(index, 0, event);
}

function send(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, {
    'content-type': 'application/x-amz-json-1.1',
    'content-length': Buffer.byteLength(text),
    'x-amzn-requestid': `req-${Math.random().toString(16).slice(2)}`,
  });
  response.end(text);
}

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];

  for await (const chunk of request) {
    chunks.push(chunk as Buffer);
  }

  return Buffer.concat(chunks).toString('utf8');
}
