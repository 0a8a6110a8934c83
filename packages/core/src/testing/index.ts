export * from './log-store-contract.js';
export * from './state-store-contract.js';
export * from './backend-provider-contract.js';
