import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** An entry as the fake keeps it. */
export interface FakeEntry {
  logName: string;
  timestamp: string;
  /** Epoch nanoseconds, for ordering and filtering. */
  nanos: bigint;
  insertId: string;
  labels: Record<string, string>;
  jsonPayload?: Record<string, unknown>;
  textPayload?: string;
  resource?: unknown;
}

export interface FakeGcpLoggingOptions {
  /** Answer one request in N with 429 RESOURCE_EXHAUSTED. */
  throttleEvery?: number;
  /** Answer one request in N with 503 UNAVAILABLE. */
  failEvery?: number;
  /** Answer every entries.list with 429, as when the read quota is spent. */
  readQuotaExhausted?: boolean;
  /** Refuse writes with 403 PERMISSION_DENIED. */
  denyWrites?: boolean;
}

/** A Cloud Logging v2 REST server on loopback: entries:write and entries:list. */
export interface FakeGcpLogging {
  /** `http://127.0.0.1:<port>` */
  url: string;
  port: number;
  entries(): FakeEntry[];
  /** How many requests each method received, and how many writes were dry runs. */
  calls: Record<string, number>;
  /** Entry counts and body sizes of every real write, for checking batch limits. */
  writes: { entries: number; bytes: number }[];
  options: FakeGcpLoggingOptions;
  close(): Promise<void>;
}

class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly status: string,
    message: string,
  ) {
    super(message);
  }
}

const maxEntryBytes = 256 * 1024;
const maxRequestBytes = 10 * 1024 * 1024;

/** Starts the fake on 127.0.0.1 with a free port, serving the given projects. */
export async function startFakeGcpLogging(
  projects: string[],
  options: FakeGcpLoggingOptions = {},
): Promise<FakeGcpLogging> {
  const known = new Set(projects);
  const stored: FakeEntry[] = [];
  const calls: Record<string, number> = {};
  const writes: FakeGcpLogging['writes'] = [];
  let requestCount = 0;
  let generatedIds = 0;

  function project(resourceName: unknown): string {
    const match = /^projects\/([^/]+)$/.exec(String(resourceName));

    if (match === null) {
      throw new ApiError(400, 'INVALID_ARGUMENT', `Invalid resource name: ${resourceName}`);
    }

    if (!known.has(match[1])) {
      throw new ApiError(404, 'NOT_FOUND', `Project ${match[1]} not found`);
    }

    return match[1];
  }

  function write(body: Record<string, unknown>, bytes: number): unknown {
    if (options.denyWrites) {
      throw new ApiError(403, 'PERMISSION_DENIED', 'Permission logging.logEntries.create denied');
    }

    const entries = (body.entries ?? []) as Record<string, unknown>[];

    if (entries.length === 0) {
      throw new ApiError(400, 'INVALID_ARGUMENT', 'entries must not be empty');
    }

    const accepted: FakeEntry[] = [];

    for (const entry of entries) {
      const logName = String(entry.logName ?? body.logName ?? '');
      const match = /^projects\/([^/]+)\/logs\/[^/]+$/.exec(logName);

      if (match === null) {
        throw new ApiError(400, 'INVALID_ARGUMENT', `Invalid log name: ${logName}`);
      }

      project(`projects/${match[1]}`);

      if (Buffer.byteLength(JSON.stringify(entry)) > maxEntryBytes) {
        throw new ApiError(400, 'INVALID_ARGUMENT', 'Log entry with size exceeds maximum');
      }

      const timestamp = String(entry.timestamp ?? new Date().toISOString());
      accepted.push({
        logName,
        timestamp,
        nanos: parseNanos(timestamp),
        insertId: String(entry.insertId ?? `gen-${String((generatedIds += 1)).padStart(12, '0')}`),
        labels: {
          ...((body.labels ?? {}) as Record<string, string>),
          ...((entry.labels ?? {}) as Record<string, string>),
        },
        ...(entry.jsonPayload === undefined
          ? {}
          : { jsonPayload: entry.jsonPayload as Record<string, unknown> }),
        ...(entry.textPayload === undefined ? {} : { textPayload: String(entry.textPayload) }),
        resource: entry.resource ?? body.resource,
      });
    }

    if (body.dryRun === true) {
      calls.dryRun = (calls.dryRun ?? 0) + 1;
      return {};
    }

    writes.push({ entries: entries.length, bytes });
    stored.push(...accepted);
    return {};
  }

  function list(body: Record<string, unknown>): unknown {
    if (options.readQuotaExhausted) {
      throw new ApiError(
        429,
        'RESOURCE_EXHAUSTED',
        "Quota exceeded for quota metric 'Read requests' of service 'logging.googleapis.com'",
      );
    }

    const resourceNames = (body.resourceNames ?? []) as string[];

    if (resourceNames.length === 0) {
      throw new ApiError(400, 'INVALID_ARGUMENT', 'resourceNames must not be empty');
    }

    const projects = new Set(resourceNames.map(project));
    const filter = String(body.filter ?? '');
    const orderBy = String(body.orderBy ?? 'timestamp asc');
    const pageSize = Number(body.pageSize ?? 50);

    if (!/^timestamp (asc|desc)$/.test(orderBy)) {
      throw new ApiError(400, 'INVALID_ARGUMENT', `Unsupported orderBy: ${orderBy}`);
    }

    if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 1000) {
      throw new ApiError(400, 'INVALID_ARGUMENT', 'pageSize must be between 1 and 1000');
    }

    const matches = parseFilter(filter);
    const query = createHash('sha256').update(`${filter}|${orderBy}`).digest('hex').slice(0, 16);
    const offset = decodePageToken(body.pageToken, query);
    const selected = stored
      .filter((entry) => projects.has(entry.logName.split('/')[1]) && matches(entry))
      .sort((a, b) => compare(a, b) * (orderBy.endsWith('desc') ? -1 : 1));
    const page = selected.slice(offset, offset + pageSize);
    const more = offset + pageSize < selected.length;

    return {
      entries: page.map((entry) => ({
        logName: entry.logName,
        resource: entry.resource,
        timestamp: entry.timestamp,
        receiveTimestamp: entry.timestamp,
        insertId: entry.insertId,
        labels: entry.labels,
        ...(entry.jsonPayload === undefined ? {} : { jsonPayload: entry.jsonPayload }),
        ...(entry.textPayload === undefined ? {} : { textPayload: entry.textPayload }),
      })),
      ...(more ? { nextPageToken: encodePageToken(offset + pageSize, query) } : {}),
    };
  }

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const raw = await readBody(request);
    const path = (request.url ?? '').split('?')[0];
    requestCount += 1;
    calls[path] = (calls[path] ?? 0) + 1;

    try {
      if (!/^Bearer \S+$/.test(String(request.headers.authorization ?? ''))) {
        throw new ApiError(401, 'UNAUTHENTICATED', 'Request had invalid authentication');
      }

      if (raw.length > maxRequestBytes) {
        throw new ApiError(400, 'INVALID_ARGUMENT', 'Request payload size exceeds the limit');
      }

      if (options.throttleEvery && requestCount % options.throttleEvery === 0) {
        throw new ApiError(429, 'RESOURCE_EXHAUSTED', 'Quota exceeded');
      }

      if (options.failEvery && requestCount % options.failEvery === 0) {
        throw new ApiError(503, 'UNAVAILABLE', 'The service is currently unavailable');
      }

      const body = JSON.parse(raw.length === 0 ? '{}' : raw.toString('utf8')) as Record<
        string,
        unknown
      >;

      if (request.method === 'POST' && path === '/v2/entries:write') {
        return reply(response, 200, write(body, raw.length));
      }

      if (request.method === 'POST' && path === '/v2/entries:list') {
        return reply(response, 200, list(body));
      }

      throw new ApiError(404, 'NOT_FOUND', `No method at ${request.method} ${path}`);
    } catch (error) {
      const api =
        error instanceof ApiError ? error : new ApiError(500, 'INTERNAL', String(error));
      reply(response, api.code, {
        error: { code: api.code, message: api.message, status: api.status, details: [] },
      });
    }
  }

  const server = createServer((request, response) => {
    void handle(request, response);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    calls,
    writes,
    options,
    entries: () => stored.map((entry) => ({ ...entry })),
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The filter subset the store sends: clauses joined by AND, each `field op "value"`. */
function parseFilter(filter: string): (entry: FakeEntry) => boolean {
  const clauses = filter.trim() === '' ? [] : filter.split(' AND ');
  const tests = clauses.map((clause) => {
    const match = /^\s*([a-zA-Z_.]+)\s*(=|>=|<=|>|<)\s*"((?:[^"\\]|\\.)*)"\s*$/.exec(clause);

    if (match === null) {
      throw new ApiError(400, 'INVALID_ARGUMENT', `Unparseable filter clause: ${clause}`);
    }

    const [, field, operator, quoted] = match;
    const value = quoted.replace(/\\(.)/g, '$1');

    if (field === 'timestamp') {
      const bound = parseNanos(value);
      return (entry: FakeEntry) => compareWith(entry.nanos, operator, bound);
    }

    if (field === 'logName' && operator === '=') {
      return (entry: FakeEntry) => entry.logName === value;
    }

    if (field.startsWith('labels.') && operator === '=') {
      const key = field.slice(7);
      return (entry: FakeEntry) => entry.labels[key] === value;
    }

    throw new ApiError(400, 'INVALID_ARGUMENT', `Unsupported filter clause: ${clause}`);
  });

  return (entry) => tests.every((test) => test(entry));
}

function compareWith(left: bigint, operator: string, right: bigint): boolean {
  switch (operator) {
    case '=':
      return left === right;
    case '>':
      return left > right;
    case '>=':
      return left >= right;
    case '<':
      return left < right;
    default:
      return left <= right;
  }
}

function compare(a: FakeEntry, b: FakeEntry): number {
  if (a.nanos !== b.nanos) {
    return a.nanos < b.nanos ? -1 : 1;
  }

  return a.insertId < b.insertId ? -1 : a.insertId > b.insertId ? 1 : 0;
}

/** RFC 3339 with up to nine fractional digits, as the API takes and gives timestamps. */
function parseNanos(text: string): bigint {
  const match = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/.exec(
    text,
  );

  if (match === null) {
    throw new ApiError(400, 'INVALID_ARGUMENT', `Invalid timestamp: ${text}`);
  }

  const seconds = BigInt(Date.parse(`${match[1]}${match[3]}`) / 1000);
  const fraction = BigInt((match[2] ?? '').padEnd(9, '0'));
  return seconds * 1_000_000_000n + fraction;
}

function encodePageToken(offset: number, query: string): string {
  return Buffer.from(JSON.stringify({ offset, query })).toString('base64url');
}

function decodePageToken(token: unknown, query: string): number {
  if (token === undefined || token === '') {
    return 0;
  }

  try {
    const parsed = JSON.parse(Buffer.from(String(token), 'base64url').toString('utf8')) as {
      offset: number;
      query: string;
    };

    if (parsed.query === query && Number.isInteger(parsed.offset)) {
      return parsed.offset;
    }
  } catch {
    // Falls through to the service's answer for a token it did not issue.
  }

  throw new ApiError(400, 'INVALID_ARGUMENT', 'page_token does not match the request');
}

function reply(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, {
    'content-type': 'application/json; charset=UTF-8',
    'content-length': Buffer.byteLength(text),
  });
  response.end(text);
}

async function readBody(request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];

  for await (const chunk of request) {
    chunks.push(chunk as Buffer);
  }

  return Buffer.concat(chunks);
}
