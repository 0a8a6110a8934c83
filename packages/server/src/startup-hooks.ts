import { startBackgroundProcessing, syncConfigBackends } from '@dstack/core';
import type { CoreContext, UserRecord } from '@dstack/core';
import type { FastifyInstance } from 'fastify';
import type { ServerConfig } from './config/server-config.js';

/** What a startup hook gets once the first-start work is done. */
export interface StartupContext {
  ctx: CoreContext;
  /** The `admin` user. */
  admin: UserRecord;
  /** The applied config.yml, or null when the server runs without one. */
  config: ServerConfig | null;
  /** The HTTP app, before it listens: a hook may register extra routes here. */
  app: FastifyInstance;
}

/**
 * Work the server does at start, after the admin user and the projects exist and before it
 * listens; what `run` returns is called at close, in reverse order.
 */
export interface StartupHook {
  name: string;
  run(start: StartupContext): Promise<(() => Promise<void>) | void>;
}

/**
 * The hooks every server runs unless `createServer({ startupHooks })` replaces them. Add
 * yours here: the config.yml backend sync, then the background scheduler (it should honour
 * `DSTACK_SERVER_BACKGROUND_PROCESSING_DISABLED` itself).
 */
export const builtinStartupHooks: StartupHook[] = [
  {
    name: 'config-backends',
    run: async ({ ctx, config }) => {
      if (config !== null) {
        // One replica at a time, so that two starting replicas do not both create a backend.
        await ctx.store.withLock('config_backends', () => syncConfigBackends(ctx, config.projects));
      }
    },
  },
  {
    name: 'scheduler',
    run: ({ ctx }) => {
      // Set to any value, as in the original: an API-only replica.
      const disabled = process.env.DSTACK_SERVER_BACKGROUND_PROCESSING_DISABLED !== undefined;
      return startBackgroundProcessing(ctx, { disabled });
    },
  },
];
