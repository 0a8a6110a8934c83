import type { LogBatchLimits, RemoteLogStoreOptions } from '@dstack/core';

const minuteMillis = 60_000;
const dayMillis = 24 * 60 * minuteMillis;

/** The one log all run logs go to, as in the original. */
export const gcpLogName = 'dstack-run-logs';

/**
 * Room each entry takes besides its message: timestamp, insert id, the stream label and
 * JSON keys. Counted generously so that a batch stays far from the request limit.
 */
const entryOverheadBytes = 512;

/**
 * entries.write limits: a request under 5 MB (the service allows 10 MB) and an entry under
 * 256 KB. Messages above the runner's 32 KiB chunk are split, so that even a message of
 * escaped control characters stays under the entry limit as JSON.
 */
export const gcpBatchLimits: LogBatchLimits = {
  maxEvents: 1_000,
  maxBytes: 5 * 1024 * 1024,
  eventOverheadBytes: entryOverheadBytes,
  maxEventBytes: 32 * 1024 + entryOverheadBytes,
  // Cloud Logging drops entries past the default bucket's 30 days or over a day ahead.
  maxAgeMillis: 30 * dayMillis - 10 * minuteMillis,
  maxFutureMillis: dayMillis - 10 * minuteMillis,
};

/** Empty entries.list pages a poll follows; each one spends read quota. */
export const maxEmptyPagesFollowed = 3;

/** A LogEntry as this store writes and reads it (the protobuf object form). */
export interface GcpLogEntry {
  logName?: string | null;
  /** `seconds` comes back as a number, a string or a Long, depending on the transport. */
  timestamp?: { seconds?: number | string | object | null; nanos?: number | null } | null;
  labels?: Record<string, string> | null;
  insertId?: string | null;
  jsonPayload?: { fields?: Record<string, { stringValue?: string | null } | null> | null } | null;
  textPayload?: string | null;
}

/** The entries.write request the store sends. */
export interface GcpWriteLogEntriesRequest {
  logName: string;
  resource: { type: string; labels: Record<string, string> };
  entries: GcpLogEntry[];
  dryRun?: boolean;
}

/** The entries.list request the store sends. */
export interface GcpListLogEntriesRequest {
  resourceNames: string[];
  filter: string;
  orderBy: string;
  pageSize: number;
  pageToken?: string;
}

/**
 * The slice of `v2.LoggingServiceV2Client` from `@google-cloud/logging` the store uses.
 * `listLogEntries` is called with `autoPaginate: false`, so it answers with one page.
 */
export interface GcpLoggingClient {
  writeLogEntries(request: GcpWriteLogEntriesRequest): Promise<unknown>;
  listLogEntries(
    request: GcpListLogEntriesRequest,
    options: { autoPaginate: false },
  ): Promise<[GcpLogEntry[], unknown, GcpListLogEntriesResponse | null | undefined, ...unknown[]]>;
}

/** The raw page that comes third in listLogEntries' answer. */
export interface GcpListLogEntriesResponse {
  nextPageToken?: string | null;
}

/** Options of createGcpLogStore. */
export interface GcpLogStoreOptions extends RemoteLogStoreOptions {
  logging: GcpLoggingClient;
  /** The project whose log `dstack-run-logs` holds the entries. */
  projectId: string;
  /** Tries of a read or the start-up check. Defaults to 3: reads have a small quota. */
  maxReadAttempts?: number;
}
