import { randomBytes } from 'node:crypto';
import {
  createRemoteLogStore,
  LogTokenError,
  remoteReadRetry,
  retryWithBackoff,
  ServerClientError,
  silentLogger,
  type BufferedLogStore,
  type LogEvent,
  type LogPage,
  type LogPollRequest,
  type LogSendResult,
  type LogStream,
} from '@dstack/core';
import {
  gcpBatchLimits,
  gcpLogName,
  maxEmptyPagesFollowed,
  type GcpLogEntry,
  type GcpLogStoreOptions,
} from './config.js';
import {
  describeGcpError,
  isInvalidArgument,
  isQuotaError,
  isRetryableGcpError,
} from './gcp-errors.js';

/** The 400 a poll gets when the entries.list quota (60 a minute by default) is spent. */
export const gcpReadQuotaMessage =
  'GCP Logging read quota exceeded: raise the entries.list quota of the project ' +
  '(60 requests per minute by default) or poll less often';

/** The original's GCP stream label: `<project>-<run>-<submission>-<job|runner>`. */
export function gcpStreamLabel(stream: LogStream): string {
  return [stream.projectName, stream.runName, stream.jobSubmissionId, stream.producer].join('-');
}

/**
 * Opens a LogStore on Cloud Logging: entries in the log `dstack-run-logs` labelled with
 * their stream, batched writes, and reads with the file store's poll semantics. Checks
 * read and write permission first and fails with the reason when either is missing.
 */
export async function createGcpLogStore(options: GcpLogStoreOptions): Promise<BufferedLogStore> {
  const { logging, projectId } = options;
  const log = (options.logger ?? silentLogger).child({ logStore: 'gcp', projectId });
  const logName = `projects/${projectId}/logs/${gcpLogName}`;
  const resource = { type: 'global', labels: { project_id: projectId } };
  // Entries with equal timestamps sort by insert id; these keep the order they were written.
  const insertIdPrefix = `${Date.now().toString(36)}${randomBytes(4).toString('hex')}`;
  let insertCount = 0;
  const readRetry = remoteReadRetry(options, 3, isRetryableGcpError);

  await checkAccess();

  async function checkAccess(): Promise<void> {
    try {
      await retryWithBackoff(
        () =>
          logging.listLogEntries(
            {
              resourceNames: [`projects/${projectId}`],
              filter: `logName = "${logName}"`,
              orderBy: 'timestamp desc',
              pageSize: 1,
            },
            { autoPaginate: false },
          ),
        readRetry,
      );
      // A dry run checks the write permission without leaving an entry behind.
      await retryWithBackoff(
        () =>
          logging.writeLogEntries({
            logName,
            resource,
            dryRun: true,
            entries: [{ labels: { stream: 'dstack-access-check' }, ...payload('') }],
          }),
        readRetry,
      );
    } catch (error) {
      const reason = describeGcpError(error);
      throw new Error(`Cannot use GCP Logging in project '${projectId}': ${reason}`, {
        cause: error,
      });
    }
  }

  async function send(stream: LogStream, events: LogEvent[]): Promise<LogSendResult> {
    const label = gcpStreamLabel(stream);
    const entries = events.map(
      (event): GcpLogEntry => ({
        timestamp: {
          seconds: Math.floor(event.timestamp / 1000),
          nanos: (event.timestamp % 1000) * 1_000_000,
        },
        labels: { stream: label },
        insertId: `${insertIdPrefix}-${String((insertCount += 1)).padStart(12, '0')}`,
        ...payload(event.message),
      }),
    );

    try {
      await logging.writeLogEntries({ logName, resource, entries });
      return { ok: true };
    } catch (error) {
      return { ok: false, retryable: isRetryableGcpError(error), error };
    }
  }

  async function listPage(
    stream: LogStream,
    request: LogPollRequest,
    pageToken: string | undefined,
  ): Promise<{ entries: GcpLogEntry[]; nextPageToken: string | null }> {
    try {
      const [entries, , response] = await retryWithBackoff(
        () =>
          logging.listLogEntries(
            {
              resourceNames: [`projects/${projectId}`],
              filter: filterOf(logName, gcpStreamLabel(stream), request),
              orderBy: request.descending ? 'timestamp desc' : 'timestamp asc',
              pageSize: request.limit,
              pageToken,
            },
            { autoPaginate: false },
          ),
        readRetry,
      );

      return { entries, nextPageToken: response?.nextPageToken || null };
    } catch (error) {
      if (isQuotaError(error)) {
        log.warn({ err: describeGcpError(error) }, 'GCP Logging read quota exceeded');
        throw new ServerClientError(gcpReadQuotaMessage);
      }

      if (pageToken !== undefined && isInvalidArgument(error)) {
        throw new LogTokenError(pageToken);
      }

      log.error({ err: describeGcpError(error) }, 'failed to poll logs');
      throw new ServerClientError('Failed to poll logs from log storage');
    }
  }

  async function poll(stream: LogStream, request: LogPollRequest): Promise<LogPage> {
    const externalUrl = consoleUrl(projectId, logName, gcpStreamLabel(stream));

    if (request.limit <= 0) {
      return { events: [], nextToken: request.nextToken ?? null, externalUrl };
    }

    let token = request.nextToken ?? undefined;

    for (let followed = 0; ; followed += 1) {
      const page = await listPage(stream, request, token);

      if (page.entries.length > 0) {
        return { events: page.entries.map(toEvent), nextToken: page.nextPageToken, externalUrl };
      }

      if (page.nextPageToken === null || followed + 1 >= maxEmptyPagesFollowed) {
        return { events: [], nextToken: page.nextPageToken, externalUrl };
      }

      token = page.nextPageToken;
    }
  }

  return createRemoteLogStore(options, { send, poll, limits: gcpBatchLimits, logger: log });
}

/**
 * The stream's entries within the poll's bounds: start exclusive, end exclusive when
 * ascending and inclusive when descending, like every other store.
 */
function filterOf(logName: string, label: string, request: LogPollRequest): string {
  const clauses = [`logName = "${logName}"`, `labels.stream = ${quote(label)}`];

  if (request.startTime != null) {
    clauses.push(`timestamp > "${new Date(request.startTime).toISOString()}"`);
  }

  if (request.endTime != null) {
    const operator = request.descending ? '<=' : '<';
    clauses.push(`timestamp ${operator} "${new Date(request.endTime).toISOString()}"`);
  }

  return clauses.join(' AND ');
}

/** The Logs Explorer, opened on the stream's entries. */
function consoleUrl(projectId: string, logName: string, label: string): string {
  const query = `logName="${logName}" AND labels.stream=${quote(label)}`;
  return (
    `https://console.cloud.google.com/logs/query;query=${encodeURIComponent(query)}` +
    `?project=${encodeURIComponent(projectId)}`
  );
}

function quote(value: string): string {
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

function payload(message: string): Pick<GcpLogEntry, 'jsonPayload'> {
  return { jsonPayload: { fields: { message: { stringValue: message } } } };
}

function toEvent(entry: GcpLogEntry): LogEvent {
  const seconds = Number(String(entry.timestamp?.seconds ?? 0));
  const nanos = entry.timestamp?.nanos ?? 0;
  const message = entry.jsonPayload?.fields?.message?.stringValue ?? entry.textPayload ?? '';

  return {
    timestamp: seconds * 1000 + Math.floor(nanos / 1_000_000),
    logSource: 'stdout',
    message,
  };
}
