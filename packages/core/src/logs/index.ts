export * from './backoff.js';
export * from './batching-log-writer.js';
export type * from './buffered-log-store.js';
export * from './log-stream-names.js';
export * from './memory-log-store.js';
export * from './remote-log-store.js';
export * from './utf8-chunks.js';
export * from './file-log-store.js';
