import type { AddressInfo } from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import {
  defaultPermissions,
  defaultProjectName,
  getOrCreateAdminUser,
  getOrCreateProject,
  silentLogger,
} from '@dstack/core';
import type {
  BackendProvider,
  Cipher,
  CoreContext,
  CoreSettings,
  LogStore,
  Logger,
  StateStore,
} from '@dstack/core';
import type { ServerConfig } from './config/server-config.js';
import { createHttpApp } from './http/index.js';
import { registerRoutes } from './routes/index.js';
import { builtinStartupHooks } from './startup-hooks.js';
import type { StartupHook } from './startup-hooks.js';
import { serverVersion } from './version.js';

/** What `createServer` takes: ready ports, settings, and the applied config.yml. */
export interface ServerOptions {
  store: StateStore;
  logStore: LogStore;
  cipher: Cipher;
  providers?: readonly BackendProvider[];
  /** A pino logger (or anything pino-shaped); the server is silent without one. */
  logger?: Logger;
  settings?: Partial<CoreSettings>;
  /** The admin token, used only when the `admin` user is first created. */
  adminToken?: string;
  /** config.yml as parsed and validated; its projects and permissions are applied at start. */
  config?: ServerConfig | null;
  /** Replaces the built-in startup hooks (tests pass their own or none). */
  startupHooks?: readonly StartupHook[];
  /** The current time in epoch milliseconds; tests pass a fake one. */
  now?: () => number;
}

/** Where to listen. */
export interface ListenOptions {
  host?: string;
  /** 0 picks a free port. */
  port?: number;
}

/** A started dstack server. */
export interface DstackServer {
  /** Starts serving HTTP; resolves with the URL. */
  listen(options?: ListenOptions): Promise<string>;
  /** Stops the startup hooks' work and the HTTP server; the ports stay open for the caller. */
  close(): Promise<void>;
  /** The URL once listening, else null. */
  readonly url: string | null;
  /** The admin user's token (as created at first start, never rotated by a restart). */
  readonly adminToken: string;
  /** An in-process request, no socket needed. */
  inject(options: InjectOptions | string): Promise<LightMyRequestResponse>;
  /** The core context the routes use. */
  readonly ctx: CoreContext;
  /** The Fastify app. */
  readonly app: FastifyInstance;
}

function settingsOf(options: ServerOptions): CoreSettings {
  const given = options.settings ?? {};
  const permissions = { ...defaultPermissions, ...given.defaultPermissions };
  const fromConfig = options.config?.default_permissions;

  if (fromConfig !== undefined && fromConfig !== null) {
    permissions.allowNonAdminsCreateProjects =
      fromConfig.allow_non_admins_create_projects ?? permissions.allowNonAdminsCreateProjects;
    permissions.allowNonAdminsManageSshFleets =
      fromConfig.allow_non_admins_manage_ssh_fleets ?? permissions.allowNonAdminsManageSshFleets;
    permissions.allowManagersManageSecrets =
      fromConfig.allow_managers_manage_secrets ?? permissions.allowManagersManageSecrets;
  }

  return {
    serverDir: given.serverDir ?? join(homedir(), '.dstack', 'server'),
    serverVersion: given.serverVersion === undefined ? serverVersion : given.serverVersion,
    defaultPermissions: permissions,
    userProjectQuota: given.userProjectQuota ?? 10,
    ...(given.eventsTtlSeconds === undefined ? {} : { eventsTtlSeconds: given.eventsTtlSeconds }),
    ...(given.metricsRunningTtlSeconds === undefined
      ? {}
      : { metricsRunningTtlSeconds: given.metricsRunningTtlSeconds }),
    ...(given.metricsFinishedTtlSeconds === undefined
      ? {}
      : { metricsFinishedTtlSeconds: given.metricsFinishedTtlSeconds }),
  };
}

/**
 * Builds a dstack server on ready ports. Under the `server_init` lock it creates the admin
 * user and project `main` when missing and the projects config.yml lists; then it runs the
 * startup hooks. It does not listen until `listen()`.
 */
export async function createServer(options: ServerOptions): Promise<DstackServer> {
  const logger = options.logger ?? silentLogger;
  const ctx: CoreContext = {
    store: options.store,
    logs: options.logStore,
    cipher: options.cipher,
    providers: new Map((options.providers ?? []).map((provider) => [provider.type, provider])),
    logger,
    settings: settingsOf(options),
    now: options.now ?? Date.now,
  };
  const config = options.config ?? null;

  const admin = await ctx.store.withLock('server_init', async () => {
    const { user } = await getOrCreateAdminUser(ctx, options.adminToken);
    const names = [defaultProjectName, ...(config?.projects ?? []).map((project) => project.name)];

    for (const name of new Set(names)) {
      await getOrCreateProject(ctx, user, name);
    }

    return user;
  });

  const app = createHttpApp({ ctx });
  registerRoutes(app, { ctx });

  const stops: (() => Promise<void>)[] = [];

  for (const hook of options.startupHooks ?? builtinStartupHooks) {
    const stop = await hook.run({ ctx, admin, config, app });

    if (stop) {
      stops.push(stop);
    }
  }

  let url: string | null = null;
  let closed = false;

  return {
    ctx,
    app,
    adminToken: ctx.cipher.decrypt(admin.token),
    get url() {
      return url;
    },
    async listen(listenOptions = {}) {
      const host = listenOptions.host ?? '127.0.0.1';
      await app.listen({ host, port: listenOptions.port ?? 3000 });
      const address = app.server.address() as AddressInfo;
      const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      url = `http://${shown}:${address.port}`;
      return url;
    },
    async close() {
      if (closed) {
        return;
      }

      closed = true;

      for (const stop of stops.reverse()) {
        try {
          await stop();
        } catch (error) {
          logger.error({ err: error }, 'a startup hook failed to stop');
        }
      }

      await app.close();
    },
    inject: (injectOptions) => app.inject(injectOptions as InjectOptions),
  };
}
