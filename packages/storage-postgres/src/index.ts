export * from './advisory-lock-id.js';
export * from './config.js';
export * from './postgres-dialect.js';
export * from './postgres-state-store.js';
export * from './open-postgres-pool.js';
