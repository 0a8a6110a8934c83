export * from './resources-match.js';
export * from './local/local-backend-provider.js';
export { baseJobEnv } from './local/local-agent.js';
export {
  detectHostResources,
  detectNvidiaGpus,
  normalizeGpuName,
  parseNvidiaSmiCsv,
} from './local/host-resources.js';
export type { HostResourcesOptions } from './local/host-resources.js';
