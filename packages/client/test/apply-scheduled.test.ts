import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCipher, createMemoryLogStore, createMemoryStateStore } from '@dstack/core';
import type { StateStore } from '@dstack/core';
import { createServer } from '@dstack/server';
import type { DstackServer } from '@dstack/server';
import { runApplyCommand } from '../src/apply-command.js';

let dir: string;
let store: StateStore;
let server: DstackServer;
let url: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dstack-apply-scheduled-'));
  store = createMemoryStateStore();
  server = await createServer({
    store,
    logStore: createMemoryLogStore(),
    cipher: createCipher(),
    settings: { serverDir: dir },
  });
  url = await server.listen({ host: '127.0.0.1', port: 0 });
  // Once a year, so the run stays pending for the whole test.
  await writeFile(join(dir, 'yearly.dstack.yml'), [
    'type: task',
    'name: yearly-report',
    'schedule:',
    '  cron: "0 0 1 1 *"',
    'commands:',
    '  - echo report',
  ].join('\n'));
});

afterAll(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

describe('dstack-apply of a scheduled run', () => {
  it('says when the run starts and returns instead of waiting for it', async () => {
    let out = '';
    let err = '';
    const abort = new AbortController();
    // A client that waited for the run would still be waiting when this fires.
    const guard = setTimeout(() => abort.abort(), 20_000);

    const code = await runApplyCommand(
      ['yearly.dstack.yml', '--url', url, '--token', server.adminToken],
      {
        env: {},
        cwd: dir,
        out: (text) => {
          out += text;
        },
        err: (text) => {
          err += text;
        },
        signal: abort.signal,
      },
    ).finally(() => clearTimeout(guard));

    const nextYear = new Date().getUTCFullYear() + 1;
    expect(abort.signal.aborted).toBe(false);
    expect(code).toBe(0);
    expect(out).toBe('');
    expect(err).toBe(`run yearly-report scheduled: it starts next at ${nextYear}-01-01T00:00:00Z;`
      + ' stop it with runs/stop to end the schedule\n');

    const run = await store.findOne('runs', { where: { runName: 'yearly-report' } });
    expect([run!.status, run!.deleted]).toEqual(['pending', false]);
  });
});
