import { createServer as createNetServer } from 'node:net';
import { join } from 'node:path';
import { pino } from 'pino';
import { createCipher } from '@dstack/core';
import type { BackendProvider, Logger, LogStore, StateStore } from '@dstack/core';
import {
  checkServerConfigBackends,
  loadServerConfig,
  ServerConfigError,
  writeDefaultServerConfig,
} from '../config/server-config.js';
import type { ServerConfig } from '../config/server-config.js';
import { createServer } from '../create-server.js';
import { serverVersion } from '../version.js';
import { CommandLineError, readServerCommandSettings, usage } from './environment.js';
import { openLogStore } from '../compose/log-store.js';
import { openStateStore, readStateStoreEnv } from '../compose/state-store.js';
import { openBackendProviders } from '../compose/backend-providers.js';

/** A start that cannot go on; the message says why and the process exits with `exitCode`. */
export class StartError extends Error {
  override readonly name = 'StartError';

  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

async function readConfig(path: string, disabled: boolean): Promise<ServerConfig | null> {
  if (disabled) {
    return null;
  }

  try {
    return await loadServerConfig(path);
  } catch (error) {
    if (error instanceof ServerConfigError) {
      throw new StartError(`${error.message}\nThe server did not start; nothing was written.`);
    }

    throw error;
  }
}

function checkConfigBackends(
  path: string,
  config: ServerConfig,
  providers: readonly BackendProvider[],
): void {
  try {
    checkServerConfigBackends(path, config, providers);
  } catch (error) {
    if (error instanceof ServerConfigError) {
      throw new StartError(`${error.message}\nThe server did not start; nothing was written.`);
    }

    throw error;
  }
}

function cannotListen(host: string, port: number, error: unknown): StartError {
  return new StartError(`Cannot listen on ${host}:${port}: ${(error as Error).message}`);
}

/**
 * Binds and releases the port before anything is written, so a port in use leaves no data
 * directory or config.yml behind. Port 0 always binds.
 */
async function checkPortFree(host: string, port: number): Promise<void> {
  if (port === 0) {
    return;
  }

  const probe = createNetServer();

  try {
    await new Promise<void>((resolveListen, rejectListen) => {
      probe.once('error', rejectListen);
      probe.listen({ host, port, exclusive: true }, () => resolveListen());
    });
  } catch (error) {
    throw cannotListen(host, port, error);
  }

  await new Promise<void>((resolveClose) => probe.close(() => resolveClose()));
}

function buildCipher(config: ServerConfig | null, logger: Logger) {
  try {
    return createCipher(config?.encryption?.keys ?? [], { logger });
  } catch (error) {
    throw new StartError(`Invalid encryption keys: ${(error as Error).message}`);
  }
}

/**
 * `dstack-server`: reads flags, environment and config.yml, opens the stores, starts the
 * server, prints the admin token and URL, and closes everything on SIGINT or SIGTERM.
 */
export async function runServerCommand(
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<void> {
  let settings;

  try {
    settings = readServerCommandSettings(argv, env);
  } catch (error) {
    if (error instanceof CommandLineError) {
      throw new StartError(error.message, 2);
    }

    throw error;
  }

  if (settings === 'help') {
    process.stdout.write(usage);
    return;
  }

  const logger = pino({ level: settings.logLevel, base: undefined }) as unknown as Logger;
  const configPath = join(settings.serverDir, 'config.yml');
  let config = await readConfig(configPath, settings.configDisabled);
  const cipher = buildCipher(config, logger);
  await checkPortFree(settings.host, settings.port);
  const backends = await openBackendProviders({
    env,
    serverDir: settings.serverDir,
    logger,
  }).catch((error: unknown) => {
    throw new StartError((error as Error).message);
  });
  const providers = backends.providers;

  if (config !== null) {
    checkConfigBackends(configPath, config, providers);
  }

  let store: StateStore | undefined;
  let logStore: LogStore | undefined;

  try {
    store = await openStateStore({
      serverDir: settings.serverDir,
      ...readStateStoreEnv(env),
      logger,
    });
    backends.bindStore(store, cipher);
    logStore = await openLogStore({ env, serverDir: settings.serverDir, logger });

    if (!settings.configDisabled && config === null) {
      logger.info('Initializing the default configuration...');
      config = await writeDefaultServerConfig(configPath);
      logger.info(`Initialized the default configuration at ${configPath}`);
    } else if (config !== null) {
      logger.info(`Applying ${configPath}...`);
    }
  } catch (error) {
    await logStore?.close?.();
    await store?.close();
    await backends.close();
    throw new StartError((error as Error).message);
  }

  let server;

  try {
    server = await createServer({
      store,
      logStore,
      cipher,
      providers,
      logger,
      settings: {
        serverDir: settings.serverDir,
        userProjectQuota: settings.userProjectQuota,
        ...(settings.eventsTtlSeconds === undefined
          ? {}
          : { eventsTtlSeconds: settings.eventsTtlSeconds }),
        ...(settings.metricsRunningTtlSeconds === undefined
          ? {}
          : { metricsRunningTtlSeconds: settings.metricsRunningTtlSeconds }),
        ...(settings.metricsFinishedTtlSeconds === undefined
          ? {}
          : { metricsFinishedTtlSeconds: settings.metricsFinishedTtlSeconds }),
      },
      ...(settings.adminToken === undefined ? {} : { adminToken: settings.adminToken }),
      config,
    });
  } catch (error) {
    await logStore.close?.();
    await store.close();
    await backends.close();
    throw error;
  }

  let url: string;

  try {
    url = await server.listen({ host: settings.host, port: settings.port });
  } catch (error) {
    // Only when another process took the port after checkPortFree released it.
    await server.close();
    await backends.close();
    await logStore.close?.();
    await store.close();
    throw cannotListen(settings.host, settings.port, error);
  }

  // The handlers come first: whoever reads the lines below may signal at once.
  const stopped = new Promise<void>((resolveStop) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals): void => {
      if (stopping) {
        return;
      }

      stopping = true;
      logger.info({ signal }, 'stopping the server');
      void (async () => {
        try {
          await server.close();
          await backends.close();
          await logStore?.close?.();
          await store?.close();
        } catch (error) {
          logger.error({ err: error }, 'the server did not close cleanly');
          process.exitCode = 1;
        }

        resolveStop();
      })();
    };

    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });

  // Printed rather than logged: the token must reach the operator, and logs never hold one.
  process.stdout.write(`The admin token is ${server.adminToken}\n`);
  const shownUrl = env['DSTACK_SERVER_URL']?.trim() || url;
  process.stdout.write(`The dstack server ${serverVersion} is running at ${shownUrl}\n`);
  await stopped;
}
