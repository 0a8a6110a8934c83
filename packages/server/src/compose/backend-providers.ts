import { createLocalBackendProvider } from '@dstack/core';
import type {
  BackendProvider,
  Cipher,
  JobProvisioningData,
  Logger,
  StateStore,
} from '@dstack/core';
import { createInstanceKeyResolver, createSshBackendProvider } from '@dstack/ssh';
import type { SshHostKeys } from '@dstack/ssh';
import { loadBackendPlugins } from './plugins.js';

/** Backend types the server brings itself; a plugin may not take one of them. */
export const builtinBackendTypes = ['local', 'remote'] as const;

export interface BackendProviders {
  providers: BackendProvider[];
  /**
   * Gives the SSH agent the state store, where it finds a host's keys after a restart. The
   * store opens after the providers, because config.yml's backends are checked before it.
   */
  bindStore(store: StateStore, cipher: Cipher): void;
  close(): Promise<void>;
}

export interface OpenBackendProvidersOptions {
  env: NodeJS.ProcessEnv;
  serverDir: string;
  logger: Logger;
}

/** The built-in providers (`local`, the SSH fleets' `remote`) and those plugins bring. */
export async function openBackendProviders(
  options: OpenBackendProvidersOptions,
): Promise<BackendProviders> {
  const { env, serverDir, logger } = options;
  const plugins = await loadBackendPlugins({
    env,
    serverDir,
    logger,
    builtinTypes: [...builtinBackendTypes],
  });
  let resolve: ((data: JobProvisioningData) => Promise<SshHostKeys | null>) | null = null;
  const ssh = createSshBackendProvider({
    logger: logger.child({ component: 'ssh' }),
    resolveKeys: async (data) => (resolve === null ? null : resolve(data)),
  });

  return {
    providers: [createLocalBackendProvider({ serverDir, logger }), ssh, ...plugins],
    bindStore(store, cipher) {
      resolve = createInstanceKeyResolver({ store, cipher });
    },
    close: () => ssh.close(),
  };
}
