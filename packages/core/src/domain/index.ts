export type * from './resources.js';
export type * from './configurations.js';
export * from './user.js';
export * from './project.js';
