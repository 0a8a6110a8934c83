export * from './cloudwatch-log-store.js';
export * from './cloudwatch-logs-client.js';
export * from './config.js';
