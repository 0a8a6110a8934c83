export type * from './resources.js';
export type * from './configurations.js';
