import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  backendPluginPaths,
  BackendPluginError,
  loadBackendPlugins,
} from '../src/compose/plugins.js';
import {
  buildFastBackend,
  requireBuiltBin,
  serverBin,
} from './fixtures-replicas/replica-cluster.js';

let dir: string;
let fastPlugin: string;

const goodPlugin = `
export function createBackendProvider({ serverDir, logger }) {
  logger.info({ serverDir }, 'making the toy provider');
  return {
    type: 'toy',
    capabilities: { images: false, multinode: false },
    serverDir,
    getOffers: async () => [],
    createInstance: async () => { throw new Error('no'); },
    terminateInstance: async () => undefined,
    agent: () => { throw new Error('no'); },
  };
}
`;

async function module(name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

function load(paths: string[], builtinTypes: string[] = ['local']) {
  return loadBackendPlugins({
    env: { DSTACK_SERVER_BACKEND_PLUGINS: paths.join(',') },
    serverDir: '/srv/dstack',
    builtinTypes,
  });
}

/** Runs the bin to its end and returns its exit code and what it printed on each stream. */
function runBin(env: Record<string, string>) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [serverBin, '--port', '0'], {
      env: { ...process.env, DSTACK_SERVER_DIR: join(dir, 'server'), ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dstack-plugins-'));
  fastPlugin = await buildFastBackend(join(dir, 'built'));
}, 60_000);

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('DSTACK_SERVER_BACKEND_PLUGINS', () => {
  it('lists absolute paths separated by commas, ignoring blanks', () => {
    expect(backendPluginPaths({})).toEqual([]);
    expect(backendPluginPaths({ DSTACK_SERVER_BACKEND_PLUGINS: ' /a/x.js, ,/b/y.mjs ' }))
      .toEqual(['/a/x.js', '/b/y.mjs']);
  });

  it('loads each module and passes it the server dir and a logger', async () => {
    const toy = await module('toy.mjs', goodPlugin);
    const providers = await load([toy, fastPlugin]);

    expect(providers.map((provider) => provider.type)).toEqual(['toy', 'fast']);
    expect((providers[0] as unknown as { serverDir: string }).serverDir).toBe('/srv/dstack');
    expect(await providers[0]!.getOffers({} as never)).toEqual([]);
  });

  it('names the module and the cause when a plugin cannot be used', async () => {
    const cases: [string, string, RegExp][] = [
      ['syntax.mjs', 'export function createBackendProvider( {', /syntax|unexpected/i],
      ['none.mjs', 'export const other = 1;', /does not export a createBackendProvider function/],
      ['throws.mjs', 'export function createBackendProvider() { throw new Error("no key"); }',
        /createBackendProvider failed: no key/],
      ['partial.mjs', 'export const createBackendProvider = () => ({ type: "half", ' +
        'capabilities: {}, getOffers() {} });', /half provider lacks createInstance, /],
      ['typeless.mjs', 'export const createBackendProvider = () => ({});', /has no type/],
    ];

    for (const [name, text, reason] of cases) {
      const path = await module(name, text);
      const error = await load([path]).then(() => null, (caught: unknown) => caught);

      expect(error).toBeInstanceOf(BackendPluginError);
      expect((error as Error).message).toMatch(`Cannot load the backend plugin ${path}: `);
      expect((error as Error).message).toMatch(reason);
      expect((error as Error).message).not.toContain('\n');
    }

    await expect(load([join(dir, 'missing.mjs')])).rejects.toThrow(/missing\.mjs: /);
    await expect(load(['relative/plugin.js'])).rejects.toThrow(/takes absolute paths/);
  });

  it('refuses a plugin that takes a type already registered', async () => {
    const toy = await module('toy-again.mjs', goodPlugin);
    const local = await module('local.mjs', goodPlugin.replace("'toy'", "'local'"));

    await expect(load([toy, toy])).rejects.toThrow(/backend type toy is already registered/);
    await expect(load([local])).rejects.toThrow(/backend type local is already registered/);
  });
});

describe('the bin with backend plugins', () => {
  beforeAll(() => requireBuiltBin());

  it('stops the start with one line when a plugin fails to load', async () => {
    const broken = await module('broken.mjs', 'export const createBackendProvider = 42;');
    const result = await runBin({ DSTACK_SERVER_BACKEND_PLUGINS: broken });

    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      `Cannot load the backend plugin ${broken}: ` +
        'the module does not export a createBackendProvider function\n');
    expect(result.stdout).not.toContain('The admin token is');
  }, 30_000);
});
