import type { LogPage, LogPollRequest, LogStream } from '../ports/log-store.js';
import type { Logger } from '../ports/logger.js';
import type { BackoffOptions, RetryCallOptions } from './backoff.js';
import { createBatchingLogWriter } from './batching-log-writer.js';
import type {
  BatchingLogWriterOptions,
  LogBatchLimits,
  LogBatchSender,
} from './batching-log-writer.js';
import type { BufferedLogStore } from './buffered-log-store.js';

/** Options every store on a remote logging service takes besides its client. */
export interface RemoteLogStoreOptions {
  logger?: Logger;
  /** Passed to the batching writer. */
  writer?: Pick<
    BatchingLogWriterOptions,
    | 'flushIntervalMillis'
    | 'deliveryWaitMillis'
    | 'maxQueuedEvents'
    | 'maxQueuedBytes'
    | 'shutdownTimeoutMillis'
  >;
  retry?: BackoffOptions;
  /** Tries of a read or the start-up check; each store has its own default. */
  maxReadAttempts?: number;
}

/** What a remote store brings to createRemoteLogStore: how it sends, polls and is bounded. */
export interface RemoteLogStoreParts {
  send: LogBatchSender;
  poll(stream: LogStream, request: LogPollRequest): Promise<LogPage>;
  limits: LogBatchLimits;
  /** The store's child logger, also the writer's. */
  logger: Logger;
}

/**
 * A BufferedLogStore whose writes go through a batching writer that sends with `send`, and
 * whose reads are `poll`; the writer takes its tuning and backoff from `options`.
 */
export function createRemoteLogStore(
  options: RemoteLogStoreOptions,
  parts: RemoteLogStoreParts,
): BufferedLogStore {
  const writer = createBatchingLogWriter({
    ...options.writer,
    send: parts.send,
    limits: parts.limits,
    retry: options.retry,
    logger: parts.logger,
  });

  return {
    write: (stream, events) => writer.write(stream, events),
    poll: parts.poll,
    flush: () => writer.flush(),
    close: () => writer.close(),
    metrics: () => writer.metrics(),
  };
}

/** How a remote store retries a read or its start-up check: its backoff, its read attempts. */
export function remoteReadRetry(
  options: RemoteLogStoreOptions,
  defaultAttempts: number,
  isRetryable: (error: unknown) => boolean,
): RetryCallOptions {
  return {
    ...options.retry,
    maxAttempts: options.maxReadAttempts ?? defaultAttempts,
    isRetryable,
  };
}
