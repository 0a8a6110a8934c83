import { join } from 'node:path';
import type { BackendProvider, Logger } from '@dstack/core';
import { createSandboxBackendProvider } from './sandbox-backend-provider.js';

/**
 * The entry the dstack-server bin looks for in a module named by
 * `DSTACK_SERVER_BACKEND_PLUGINS`: the sandbox backend, with its scratch space under the
 * server's directory.
 */
export function createBackendProvider(options: {
  serverDir: string;
  logger: Logger;
}): BackendProvider {
  options.logger.info({ scratchDir: join(options.serverDir, 'sandbox') }, 'sandbox backend');
  return createSandboxBackendProvider({ scratchDir: join(options.serverDir, 'sandbox') });
}
