export * from './client.js';
export * from './dstack-api-error.js';
export type { LogLine, LogsOptions } from './follow-logs.js';
export * from './wire-types.js';
export { followRun } from './follow-run.js';
export type { FollowRunOptions, FollowRunResult } from './follow-run.js';
export { applyUsage, runApplyCommand } from './apply-command.js';
export type { ApplyCommandIo } from './apply-command.js';
