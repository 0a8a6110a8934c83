import type { LogEvent, LogStream } from '../ports/log-store.js';
import { silentLogger, type Logger } from '../ports/logger.js';
import { backoffDelayMillis, resolveBackoffPolicy, type BackoffOptions } from './backoff.js';
import { logStreamKey } from './log-stream-names.js';
import { splitUtf8, utf8Length } from './utf8-chunks.js';

/** What one call of a remote service accepts; the writer never builds a batch beyond it. */
export interface LogBatchLimits {
  /** Events per batch. */
  maxEvents: number;
  /** Bytes per batch: UTF-8 message bytes plus `eventOverheadBytes` for each event. */
  maxBytes: number;
  eventOverheadBytes?: number;
  /** An event larger than this (overhead included) is split into several events. */
  maxEventBytes?: number;
  /** Timestamps of one batch stay less than this far apart. */
  maxSpanMillis?: number;
  /** Events older than this when written are dropped and counted. */
  maxAgeMillis?: number;
  /** Events further than this in the future when written are dropped and counted. */
  maxFutureMillis?: number;
  /** The service refuses empty messages, so they are dropped (and counted). */
  dropEmptyMessages?: boolean;
}

/**
 * How a send went. A success may say how many events the service refused by their age; a
 * failure says whether the same batch may pass when sent again.
 */
export type LogSendResult =
  | { ok: true; rejected?: { tooOld?: number; tooNew?: number } }
  | { ok: false; retryable: boolean; error: unknown; retryAfterMillis?: number };

/** Sends one batch of one stream, in timestamp order, within the limits. */
export type LogBatchSender = (stream: LogStream, events: LogEvent[]) => Promise<LogSendResult>;

/** Why events were dropped. */
export type LogDropReason =
  | 'queueFull'
  | 'rejected'
  | 'tooOld'
  | 'tooNew'
  | 'empty'
  | 'shutdown';

/** Counters of a writer since it started. */
export interface LogWriterMetrics {
  queuedEvents: number;
  queuedBytes: number;
  sentEvents: number;
  sentBatches: number;
  /** Sends that failed and were tried again. */
  retries: number;
  /** Events cut in pieces because they were larger than one event may be. */
  splitEvents: number;
  droppedEvents: Record<LogDropReason, number>;
  droppedBytes: number;
}

/** Options of createBatchingLogWriter: the sender, the service's limits and the bounds. */
export interface BatchingLogWriterOptions {
  send: LogBatchSender;
  limits: LogBatchLimits;
  /** A partial batch of writes that do not wait waits at most about this long. Defaults to 1 s. */
  flushIntervalMillis?: number;
  /**
   * How long write() waits for its events to be sent before it leaves them queued; 0 for
   * writes that only queue. A waiting write sends its stream at once. Defaults to 2 s.
   */
  deliveryWaitMillis?: number;
  /** Bounds of everything waiting or in flight; past them new events are dropped. */
  maxQueuedEvents?: number;
  maxQueuedBytes?: number;
  /** Sends in flight at once, each for a different stream. Defaults to 4. */
  maxConcurrentSends?: number;
  retry?: BackoffOptions;
  /** How long close() keeps trying before it drops what is left. Defaults to 10 s. */
  shutdownTimeoutMillis?: number;
  logger?: Logger;
  /** The clock, in epoch milliseconds; tests move it. */
  now?: () => number;
}

/**
 * Ships log events to a remote service: a bounded queue, batches within the service's
 * limits, flushes on size, interval and shutdown, and jittered retries of failures the
 * sender calls retryable. Drops are counted and logged, never silent.
 */
export interface BatchingLogWriter {
  /**
   * Queues events (whatever does not fit is dropped and counted) and resolves once they are
   * sent or dropped, or once `deliveryWaitMillis` passed while they are still retried. It
   * does not wait for a stream whose sends are already failing.
   */
  write(stream: LogStream, events: readonly LogEvent[]): Promise<void>;
  /** Resolves once everything queued so far has been sent or dropped. */
  flush(): Promise<void>;
  /** Flushes within the shutdown timeout, drops what is left and refuses later writes. */
  close(): Promise<void>;
  metrics(): LogWriterMetrics;
}

interface QueuedEvent {
  event: LogEvent;
  bytes: number;
  /** The write waiting for this event, if one does. */
  ticket?: WriteTicket;
}

/** A waiting write: how many of its events are still queued. */
interface WriteTicket {
  remaining: number;
  resolve(): void;
}

interface StreamQueue {
  stream: LogStream;
  pending: QueuedEvent[];
  pendingBytes: number;
  inFlight: QueuedEvent[] | null;
  attempt: number;
  retryAtMillis: number;
  /** `inFlight` is with the sender right now (otherwise it waits for `retryAtMillis`). */
  sending: boolean;
  /** Send partial batches too: the interval passed or a flush was asked for. */
  draining: boolean;
}

const dropReasons: LogDropReason[] = [
  'queueFull',
  'rejected',
  'tooOld',
  'tooNew',
  'empty',
  'shutdown',
];

/** Creates the writer that CloudWatch and GCP stores hand their batches to. */
export function createBatchingLogWriter(options: BatchingLogWriterOptions): BatchingLogWriter {
  const log = options.logger ?? silentLogger;
  const now = options.now ?? Date.now;
  const limits = options.limits;
  const overhead = limits.eventOverheadBytes ?? 0;
  const flushIntervalMillis = options.flushIntervalMillis ?? 1_000;
  const deliveryWaitMillis = options.deliveryWaitMillis ?? 2_000;
  const maxQueuedEvents = options.maxQueuedEvents ?? 100_000;
  const maxQueuedBytes = options.maxQueuedBytes ?? 64 * 1024 * 1024;
  const maxConcurrentSends = options.maxConcurrentSends ?? 4;
  const shutdownTimeoutMillis = options.shutdownTimeoutMillis ?? 10_000;
  const retryPolicy = resolveBackoffPolicy(options.retry);

  const queues = new Map<string, StreamQueue>();
  const counters: LogWriterMetrics = {
    queuedEvents: 0,
    queuedBytes: 0,
    sentEvents: 0,
    sentBatches: 0,
    retries: 0,
    splitEvents: 0,
    droppedEvents: Object.fromEntries(dropReasons.map((r) => [r, 0])) as Record<
      LogDropReason,
      number
    >,
    droppedBytes: 0,
  };
  const unreported = new Map<LogDropReason, number>();
  const idleWaiters: (() => void)[] = [];
  let activeSends = 0;
  let closed = false;
  let abandoned = false;
  let lastReportMillis = 0;
  let retryTimer: NodeJS.Timeout | null = null;

  const intervalTimer = setInterval(() => {
    for (const queue of queues.values()) {
      queue.draining = queue.pending.length > 0;
    }

    pump();
    reportDrops();
  }, flushIntervalMillis);
  intervalTimer.unref();

  function drop(reason: LogDropReason, events: number, bytes: number): void {
    if (events === 0) {
      return;
    }

    counters.droppedEvents[reason] += events;
    counters.droppedBytes += bytes;
    unreported.set(reason, (unreported.get(reason) ?? 0) + events);
  }

  function reportDrops(): void {
    if (unreported.size === 0) {
      return;
    }

    lastReportMillis = now();
    const dropped = Object.fromEntries(unreported);
    unreported.clear();
    log.warn(
      { dropped, totalDropped: { ...counters.droppedEvents }, queued: counters.queuedEvents },
      'log events dropped',
    );
  }

  function prepare(events: readonly LogEvent[]): QueuedEvent[] {
    const at = now();
    const prepared: QueuedEvent[] = [];

    for (const event of events) {
      const bytes = utf8Length(event.message);

      if (limits.dropEmptyMessages && bytes === 0) {
        drop('empty', 1, 0);
        continue;
      }

      if (limits.maxAgeMillis !== undefined && event.timestamp < at - limits.maxAgeMillis) {
        drop('tooOld', 1, bytes);
        continue;
      }

      if (limits.maxFutureMillis !== undefined && event.timestamp > at + limits.maxFutureMillis) {
        drop('tooNew', 1, bytes);
        continue;
      }

      const maxEventBytes = limits.maxEventBytes;

      if (maxEventBytes === undefined || bytes + overhead <= maxEventBytes) {
        prepared.push({ event: { ...event }, bytes });
        continue;
      }

      counters.splitEvents += 1;

      for (const message of splitUtf8(event.message, maxEventBytes - overhead)) {
        prepared.push({ event: { ...event, message }, bytes: utf8Length(message) });
      }
    }

    return prepared;
  }

  function enqueue(queue: StreamQueue, items: QueuedEvent[], ticket?: WriteTicket): void {
    for (const [index, item] of items.entries()) {
      const full =
        counters.queuedEvents + 1 > maxQueuedEvents ||
        counters.queuedBytes + item.bytes > maxQueuedBytes;

      if (full) {
        // The rest of this write goes too, so what is kept has no holes in it.
        const rest = items.slice(index);
        drop('queueFull', rest.length, rest.reduce((sum, r) => sum + r.bytes, 0));
        return;
      }

      if (ticket !== undefined) {
        item.ticket = ticket;
        ticket.remaining += 1;
      }

      insertSorted(queue.pending, item);
      queue.pendingBytes += item.bytes;
      counters.queuedEvents += 1;
      counters.queuedBytes += item.bytes;
    }
  }

  function hasFullBatch(queue: StreamQueue): boolean {
    const pending = queue.pending;

    if (pending.length === 0) {
      return false;
    }

    if (pending.length >= limits.maxEvents) {
      return true;
    }

    if (queue.pendingBytes + pending.length * overhead >= limits.maxBytes) {
      return true;
    }

    const span = pending[pending.length - 1].event.timestamp - pending[0].event.timestamp;
    return limits.maxSpanMillis !== undefined && span >= limits.maxSpanMillis;
  }

  function takeBatch(queue: StreamQueue): QueuedEvent[] {
    const pending = queue.pending;
    const first = pending[0].event.timestamp;
    let bytes = 0;
    let count = 0;

    for (; count < pending.length && count < limits.maxEvents; count += 1) {
      const item = pending[count];
      const size = item.bytes + overhead;
      const tooLong =
        limits.maxSpanMillis !== undefined && item.event.timestamp - first >= limits.maxSpanMillis;

      if ((count > 0 && bytes + size > limits.maxBytes) || tooLong) {
        break;
      }

      bytes += size;
    }

    const batch = pending.splice(0, Math.max(count, 1));
    queue.pendingBytes -= batch.reduce((sum, item) => sum + item.bytes, 0);
    return batch;
  }

  function release(batch: QueuedEvent[]): number {
    const bytes = batch.reduce((sum, item) => sum + item.bytes, 0);
    counters.queuedEvents -= batch.length;
    counters.queuedBytes -= bytes;

    for (const item of batch) {
      if (item.ticket !== undefined && (item.ticket.remaining -= 1) === 0) {
        item.ticket.resolve();
      }
    }

    return bytes;
  }

  function pump(): void {
    const at = now();

    for (const queue of queues.values()) {
      if (activeSends >= maxConcurrentSends) {
        break;
      }

      if (queue.inFlight !== null) {
        if (queue.retryAtMillis <= at && !queue.sending) {
          startSend(queue, queue.inFlight);
        }

        continue;
      }

      if (queue.pending.length === 0 || !(queue.draining || hasFullBatch(queue))) {
        continue;
      }

      startSend(queue, takeBatch(queue));
    }

    scheduleRetry();
    settleIdle();
  }

  function startSend(queue: StreamQueue, batch: QueuedEvent[]): void {
    queue.inFlight = batch;
    queue.sending = true;
    activeSends += 1;

    void sendSafely(queue.stream, batch.map((item) => item.event)).then((result) => {
      activeSends -= 1;
      queue.sending = false;
      finishSend(queue, batch, result);
      pump();
    });
  }

  function finishSend(queue: StreamQueue, batch: QueuedEvent[], result: LogSendResult): void {
    if (result.ok) {
      queue.inFlight = null;
      queue.attempt = 0;
      release(batch);
      const tooOld = result.rejected?.tooOld ?? 0;
      const tooNew = result.rejected?.tooNew ?? 0;
      drop('tooOld', tooOld, 0);
      drop('tooNew', tooNew, 0);
      counters.sentEvents += batch.length - tooOld - tooNew;
      counters.sentBatches += 1;
      forgetIfEmpty(queue);
      return;
    }

    if (result.retryable && !abandoned) {
      queue.attempt += 1;
      counters.retries += 1;
      const delay = Math.max(
        result.retryAfterMillis ?? 0,
        backoffDelayMillis(queue.attempt, retryPolicy),
      );
      queue.retryAtMillis = now() + delay;
      log.debug(
        { stream: logStreamKey(queue.stream), attempt: queue.attempt, delayMillis: delay },
        'log batch send failed, retrying',
      );
      return;
    }

    queue.inFlight = null;
    queue.attempt = 0;

    if (abandoned) {
      drop('shutdown', batch.length, release(batch));
      return;
    }

    drop('rejected', batch.length, release(batch));
    log.error(
      { stream: logStreamKey(queue.stream), events: batch.length, err: errorMessage(result.error) },
      'log batch rejected by the log service',
    );
    forgetIfEmpty(queue);
  }

  async function sendSafely(stream: LogStream, events: LogEvent[]): Promise<LogSendResult> {
    try {
      return await options.send(stream, events);
    } catch (error) {
      return { ok: false, retryable: false, error };
    }
  }

  function forgetIfEmpty(queue: StreamQueue): void {
    if (queue.pending.length === 0 && queue.inFlight === null) {
      queues.delete(logStreamKey(queue.stream));
    }
  }

  function scheduleRetry(): void {
    let earliest = Number.POSITIVE_INFINITY;

    for (const queue of queues.values()) {
      if (queue.inFlight !== null && !queue.sending) {
        earliest = Math.min(earliest, queue.retryAtMillis);
      }
    }

    if (retryTimer !== null) {
      clearTimeout(retryTimer);
      retryTimer = null;
    }

    if (earliest === Number.POSITIVE_INFINITY) {
      return;
    }

    retryTimer = setTimeout(
      () => {
        retryTimer = null;
        pump();
      },
      Math.max(0, earliest - now()),
    );
  }

  function settleIdle(): void {
    if (counters.queuedEvents > 0 || activeSends > 0) {
      return;
    }

    for (const resolve of idleWaiters.splice(0)) {
      resolve();
    }
  }

  function flush(): Promise<void> {
    for (const queue of queues.values()) {
      queue.draining = true;
    }

    const idle = new Promise<void>((resolve) => idleWaiters.push(resolve));
    pump();
    return idle;
  }

  return {
    write(stream, events) {
      if (closed) {
        throw new Error('The log writer is closed');
      }

      const items = prepare(events);
      let delivered: Promise<void> = Promise.resolve();

      // Agents stamp events in order; the queue sorts them anyway, as the services need.
      if (items.some((item, k) => k > 0 && item.event.timestamp < items[k - 1].event.timestamp)) {
        log.error({ stream: logStreamKey(stream) }, 'log events out of order; sorting them');
      }

      if (items.length > 0) {
        const key = logStreamKey(stream);
        let queue = queues.get(key);

        if (queue === undefined) {
          queue = {
            stream: { ...stream },
            pending: [],
            pendingBytes: 0,
            inFlight: null,
            attempt: 0,
            retryAtMillis: 0,
            sending: false,
            draining: false,
          };
          queues.set(key, queue);
        }

        // A stream already failing keeps its events queued without holding the caller.
        // TODO: lines still queued when a write stops waiting die with the process; matters
        // when a replica is killed during a log-service outage (the job's cursor moved on).
        const waits = deliveryWaitMillis > 0 && queue.attempt === 0;
        const ticket = waits ? newTicket() : undefined;
        enqueue(queue, items, ticket);

        if (ticket !== undefined && ticket.remaining > 0) {
          delivered = ticket.wait;
          queue.draining = true;
          pump();
        } else if (hasFullBatch(queue)) {
          pump();
        }
      }

      // A full queue is reported at once, then at most once per interval.
      if (unreported.size > 0 && now() - lastReportMillis >= flushIntervalMillis) {
        reportDrops();
      }

      return delivered;
    },

    flush,

    async close() {
      if (closed) {
        return;
      }

      closed = true;
      clearInterval(intervalTimer);
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), shutdownTimeoutMillis);
      });
      const outcome = await Promise.race([flush().then(() => 'flushed' as const), deadline]);
      clearTimeout(timer);

      if (outcome === 'timeout') {
        abandon();
      }

      reportDrops();
    },

    metrics() {
      return { ...counters, droppedEvents: { ...counters.droppedEvents } };
    },
  };

  function newTicket(): WriteTicket & { wait: Promise<void> } {
    let timer: NodeJS.Timeout | undefined;
    let done: () => void = () => undefined;
    const wait = new Promise<void>((resolve) => {
      done = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    timer = setTimeout(done, deliveryWaitMillis);
    timer.unref();

    return { remaining: 0, resolve: done, wait };
  }

  // Drops everything left after the shutdown deadline; sends still in flight finish alone.
  function abandon(): void {
    abandoned = true;

    for (const queue of queues.values()) {
      const left = [...(queue.sending ? [] : (queue.inFlight ?? [])), ...queue.pending];
      drop('shutdown', left.length, release(left));
      queue.pending = [];
      queue.pendingBytes = 0;
      queue.inFlight = null;
    }

    queues.clear();

    if (retryTimer !== null) {
      clearTimeout(retryTimer);
      retryTimer = null;
    }

    for (const resolve of idleWaiters.splice(0)) {
      resolve();
    }
  }
}

function insertSorted(pending: QueuedEvent[], item: QueuedEvent): void {
  let index = pending.length;

  // Stable: an event goes after every queued event with the same or an earlier timestamp.
  while (index > 0 && pending[index - 1].event.timestamp > item.event.timestamp) {
    index -= 1;
  }

  if (index === pending.length) {
    pending.push(item);
    return;
  }

  pending.splice(index, 0, item);
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
