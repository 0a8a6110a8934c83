export * from './cloudwatch-log-store.js';
export * from './config.js';
