import type { LogStore } from '../ports/log-store.js';
import type { LogWriterMetrics } from './batching-log-writer.js';

/**
 * A LogStore whose writes go through a batching writer: `write` queues and waits a little
 * for delivery, `flush` waits until the queue is sent, `close` flushes and stops, and
 * `metrics` counts what was sent and what had to be dropped.
 */
export interface BufferedLogStore extends LogStore {
  flush(): Promise<void>;
  close(): Promise<void>;
  metrics(): LogWriterMetrics;
}
