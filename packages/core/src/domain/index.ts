export type * from './resources.js';
export type * from './configurations.js';
export * from './user.js';
export * from './project.js';
export * from './instance.js';
export * from './fleet.js';
export * from './job.js';
export * from './run.js';
export type * from './repo.js';
