import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createCipher,
  createLocalBackendProvider,
  createMemoryLogStore,
  createMemoryStateStore,
  listProjectBackendsForWire,
  newInstanceRecord,
} from '@dstack/core';
import type { Logger, StateStore } from '@dstack/core';
import { loadServerConfig } from '../src/config/server-config.js';
import { createServer } from '../src/create-server.js';
import type { DstackServer } from '../src/create-server.js';
import { builtinStartupHooks } from '../src/startup-hooks.js';

const sharedFixtures = join(import.meta.dirname, '../../../../shared/fixtures');

let serverDir: string;
let store: StateStore;
let server: DstackServer | undefined;
let lines: string[];

const keep = (fields: object | string, message?: string): void => {
  lines.push(JSON.stringify({ fields, message }));
};
const logger: Logger = {
  error: keep,
  warn: keep,
  info: () => undefined,
  debug: () => undefined,
  child: () => logger,
};

/** A server start with only the config.yml backend sync among the startup hooks. */
async function start(): Promise<DstackServer> {
  const config = await loadServerConfig(join(serverDir, 'config.yml'));
  server = await createServer({
    store,
    logStore: createMemoryLogStore(),
    cipher: createCipher(config?.encryption?.keys ?? []),
    providers: [createLocalBackendProvider({ serverDir })],
    logger,
    settings: { serverDir },
    config,
    startupHooks: builtinStartupHooks.filter((hook) => hook.name === 'config-backends'),
  });

  return server;
}

beforeEach(() => {
  lines = [];
  serverDir = mkdtempSync(join(tmpdir(), 'backends-config-sync-'));
  store = createMemoryStateStore();
});

afterEach(async () => {
  await server?.close();
  server = undefined;
  rmSync(serverDir, { recursive: true, force: true });
});

describe('the config.yml backend sync at start', () => {
  it('gives project main the local backend of config-aes.yml', async () => {
    copyFileSync(join(sharedFixtures, 'server/config-aes.yml'), join(serverDir, 'config.yml'));
    const started = await start();
    const main = await store.findOne('projects', { where: { name: 'main' } });

    expect(await listProjectBackendsForWire(started.ctx, main!.id)).toEqual([
      { name: 'local', config: { type: 'local' } },
    ]);
  });

  it('keeps a backend dropped from the file while active instances use it', async () => {
    writeFileSync(join(serverDir, 'config.yml'), [
      'projects:', '  - name: main', '    backends:', '      - type: local', '',
    ].join('\n'));
    const first = await start();
    const main = await store.findOne('projects', { where: { name: 'main' } });
    await store.insert('instances', newInstanceRecord({
      projectId: main!.id, fleetId: null, fleetName: 'f', instanceNum: 0, now: first.ctx.now(),
      status: 'idle', backend: 'local', idleSeconds: 300,
    }));
    await first.close();
    server = undefined;

    writeFileSync(join(serverDir, 'config.yml'), 'projects:\n  - name: main\n');
    const second = await start();

    expect(await listProjectBackendsForWire(second.ctx, main!.id)).toEqual([
      { name: 'local', config: { type: 'local' } },
    ]);
    expect(lines.join('\n')).toContain('Backend local is not in config.yml but active instances');
    await second.close();
    server = undefined;

    await store.update('instances', { projectId: main!.id }, { status: 'terminated' });
    const third = await start();
    expect(await listProjectBackendsForWire(third.ctx, main!.id)).toEqual([]);
  });
});
