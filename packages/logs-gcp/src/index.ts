export * from './config.js';
export * from './gcp-log-store.js';
export * from './gcp-logging-client.js';
