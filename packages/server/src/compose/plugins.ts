import { basename, isAbsolute } from 'node:path';
import { pathToFileURL } from 'node:url';
import { silentLogger } from '@dstack/core';
import type { BackendProvider, Logger } from '@dstack/core';

/** What a backend plugin module's `createBackendProvider` is given. */
export interface BackendPluginOptions {
  /** The server directory; a plugin keeps its own files under it. */
  serverDir: string;
  /** The server's logger, bound to the plugin's file name. */
  logger: Logger;
}

/** The shape of a backend plugin module: one named export that makes the provider. */
export interface BackendPluginModule {
  createBackendProvider(
    options: BackendPluginOptions,
  ): BackendProvider | Promise<BackendProvider>;
}

/** Options of `loadBackendPlugins`; the bin passes `process.env`. */
export interface LoadBackendPluginsOptions {
  /** Reads `DSTACK_SERVER_BACKEND_PLUGINS`. */
  env: Record<string, string | undefined>;
  serverDir: string;
  logger?: Logger;
  /** Backend types the server registers itself; a plugin may not take one of them. */
  builtinTypes?: readonly string[];
}

/** A plugin that cannot be used; the message is one line naming the module and the cause. */
export class BackendPluginError extends Error {
  override readonly name = 'BackendPluginError';
}

const providerMethods = ['getOffers', 'createInstance', 'terminateInstance', 'agent'] as const;

/** The modules `DSTACK_SERVER_BACKEND_PLUGINS` lists: absolute paths, separated by commas. */
export function backendPluginPaths(env: Record<string, string | undefined>): string[] {
  const value = env.DSTACK_SERVER_BACKEND_PLUGINS ?? '';

  return value
    .split(',')
    .map((path) => path.trim())
    .filter((path) => path !== '');
}

function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n')[0] ?? message;
}

function checkProvider(value: unknown): string | null {
  if (typeof value !== 'object' || value === null) {
    return 'createBackendProvider did not return an object';
  }

  const provider = value as Record<string, unknown>;

  if (typeof provider.type !== 'string' || provider.type.trim() === '') {
    return 'the provider has no type';
  }

  if (typeof provider.capabilities !== 'object' || provider.capabilities === null) {
    return `the ${provider.type} provider has no capabilities`;
  }

  const missing = providerMethods.filter((name) => typeof provider[name] !== 'function');

  return missing.length === 0
    ? null
    : `the ${provider.type} provider lacks ${missing.join(', ')}`;
}

async function loadOne(path: string, options: LoadBackendPluginsOptions): Promise<BackendProvider> {
  const fail = (reason: string): BackendPluginError =>
    new BackendPluginError(`Cannot load the backend plugin ${path}: ${reason}`);

  if (!isAbsolute(path)) {
    throw fail('DSTACK_SERVER_BACKEND_PLUGINS takes absolute paths');
  }

  let loaded: Partial<BackendPluginModule>;

  try {
    loaded = (await import(pathToFileURL(path).href)) as Partial<BackendPluginModule>;
  } catch (error) {
    throw fail(firstLine(error));
  }

  if (typeof loaded.createBackendProvider !== 'function') {
    throw fail('the module does not export a createBackendProvider function');
  }

  let provider: unknown;

  try {
    const logger = (options.logger ?? silentLogger).child({ plugin: basename(path) });
    provider = await loaded.createBackendProvider({ serverDir: options.serverDir, logger });
  } catch (error) {
    throw fail(`createBackendProvider failed: ${firstLine(error)}`);
  }

  const problem = checkProvider(provider);

  if (problem !== null) {
    throw fail(problem);
  }

  return provider as BackendProvider;
}

/**
 * Imports the backend plugin modules `DSTACK_SERVER_BACKEND_PLUGINS` lists, in order, and
 * returns their providers. The first module that cannot be used throws a BackendPluginError.
 */
export async function loadBackendPlugins(
  options: LoadBackendPluginsOptions,
): Promise<BackendProvider[]> {
  const taken = new Set(options.builtinTypes ?? []);
  const providers: BackendProvider[] = [];

  for (const path of backendPluginPaths(options.env)) {
    const provider = await loadOne(path, options);

    if (taken.has(provider.type)) {
      throw new BackendPluginError(
        `Cannot load the backend plugin ${path}: backend type ${provider.type} is already ` +
          'registered',
      );
    }

    taken.add(provider.type);
    providers.push(provider);
    (options.logger ?? silentLogger).info({ plugin: path, backend: provider.type },
      'backend plugin loaded');
  }

  return providers;
}
