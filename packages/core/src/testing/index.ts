export * from './log-store-contract.js';
