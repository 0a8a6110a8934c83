export * from './client.js';
export * from './dstack-api-error.js';
export type { LogLine, LogsOptions } from './follow-logs.js';
export * from './wire-types.js';
