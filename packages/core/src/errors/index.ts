export * from './server-errors.js';
