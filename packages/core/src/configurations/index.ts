export * from './configuration-error.js';
export * from './memory.js';
export * from './range.js';
export * from './duration.js';
export * from './env.js';
export * from './resources.js';
