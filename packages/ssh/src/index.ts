export { createSshBackendProvider } from './ssh-backend-provider.js';
export type { SshBackendProvider } from './ssh-backend-provider.js';
export type { SshBackendProviderOptions, SshHostKeys } from './config.js';
export { SshHostError } from './ssh-host-error.js';
export type { SshHostErrorReason } from './ssh-host-error.js';
export { runnerScript, runnerScriptSha256 } from './runner-script.js';
export { authorizedKeyTag } from './authorized-keys.js';
export { createInstanceKeyResolver } from './instance-key-resolver.js';
export type { InstanceKeyResolverOptions } from './instance-key-resolver.js';
