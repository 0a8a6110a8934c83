export type * from './state-store.js';
export type * from './log-store.js';
export type * from './cipher.js';
export type * from './backend-provider.js';
export type { Logger, LogFn } from './logger.js';
export { silentLogger } from './logger.js';
