export * from './sandbox-backend-provider.js';
export { createSandboxAgent } from './sandbox-agent.js';
export type { SandboxAgentOptions, SandboxJobs } from './sandbox-agent.js';
export { createBackendProvider } from './plugin-module.js';
