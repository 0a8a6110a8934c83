export * from './time.js';
export * from './ids.js';
