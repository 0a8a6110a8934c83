export * from './sql-dialect.js';
export * from './column-codec.js';
export * from './build-where.js';
export * from './sql-state-store.js';
export * from './migrations.js';
