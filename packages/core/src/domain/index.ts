export type * from './resources.js';
