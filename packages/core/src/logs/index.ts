export * from './log-stream-names.js';
export * from './memory-log-store.js';
