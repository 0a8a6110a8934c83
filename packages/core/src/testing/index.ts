export * from './log-store-contract.js';
export * from './state-store-contract.js';
export * from './backend-provider-contract.js';
export * from './fake-backend-provider.js';
export * from './repo-fixtures.js';
