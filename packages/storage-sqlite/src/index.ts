export * from './config.js';
export * from './open-sqlite-database.js';
export * from './replica-lock.js';
export * from './sqlite-dialect.js';
export * from './sqlite-state-store.js';
