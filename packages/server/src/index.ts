export { createServer } from './create-server.js';
export type { DstackServer, ListenOptions, ServerOptions } from './create-server.js';
export { builtinStartupHooks } from './startup-hooks.js';
export type { StartupContext, StartupHook } from './startup-hooks.js';
export {
  defaultServerConfigText,
  loadServerConfig,
  ServerConfigError,
  validateServerConfig,
  writeDefaultServerConfig,
} from './config/server-config.js';
export type { ServerConfig, ServerConfigBackend } from './config/server-config.js';
export { serverVersion } from './version.js';
export * from './http/index.js';
export { registerRoutes } from './routes/index.js';
export type { RouteDeps } from './routes/index.js';
