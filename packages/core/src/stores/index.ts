export * from './errors.js';
export * from './unique-keys.js';
export * from './mutex.js';
export * from './match-where.js';
export * from './guard-state-store.js';
export * from './memory-state-store.js';
