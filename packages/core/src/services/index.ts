export * from './access.js';
export * from './users.js';
export * from './projects.js';
