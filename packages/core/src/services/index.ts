export * from './access.js';
export * from './users.js';
export * from './projects.js';
export * from './secret-interpolation.js';
export * from './secrets.js';
export * from './backends.js';
export * from './backends-yaml.js';
export * from './backends-sync.js';
