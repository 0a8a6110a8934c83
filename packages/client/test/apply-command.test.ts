import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createCipher,
  createLocalBackendProvider,
  createMemoryLogStore,
  createMemoryStateStore,
} from '@dstack/core';
import type { StateStore } from '@dstack/core';
import { createServer } from '@dstack/server';
import type { DstackServer } from '@dstack/server';
import { runApplyCommand } from '../src/apply-command.js';

let dir: string;
let store: StateStore;
let server: DstackServer;
let url: string;

async function waitForLocalFleet(): Promise<void> {
  const deadline = Date.now() + 10_000;

  while (Date.now() < deadline) {
    if (await store.findOne('fleets', { where: { deleted: false } })) {
      return;
    }

    await new Promise((resolve) => setTimeout(resolve, 50));
  }

  throw new Error('project main got no default fleet');
}

async function run(argv: string[], env: NodeJS.ProcessEnv = {}) {
  let out = '';
  let err = '';
  const code = await runApplyCommand(argv, {
    env,
    cwd: dir,
    out: (text) => {
      out += text;
    },
    err: (text) => {
      err += text;
    },
  });

  return { code, out, err };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dstack-apply-'));
  store = createMemoryStateStore();
  server = await createServer({
    store,
    logStore: createMemoryLogStore(),
    cipher: createCipher(),
    providers: [createLocalBackendProvider({ serverDir: dir })],
    settings: { serverDir: dir },
    config: { projects: [{ name: 'main', backends: [{ type: 'local' }] }] },
  });
  url = await server.listen({ host: '127.0.0.1', port: 0 });
  await waitForLocalFleet();
  await writeFile(join(dir, 'ok.dstack.yml'), [
    'type: task',
    'name: shell-ok',
    'commands:',
    '  - echo "hello from $DSTACK_RUN_NAME"',
    '  - echo "to stderr" >&2',
  ].join('\n'));
  await writeFile(join(dir, 'fails.dstack.yml'), [
    'type: task',
    'name: shell-fails',
    'commands:',
    '  - echo before',
    '  - exit 7',
  ].join('\n'));
});

afterAll(async () => {
  await server.close();
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

describe('dstack-apply', () => {
  it('applies a file, prints its logs and exits with the job status', async () => {
    const result = await run(['ok.dstack.yml', '--url', url], { DSTACK_TOKEN: server.adminToken });

    expect(result.code).toBe(0);
    expect(result.out).toBe('hello from shell-ok\nto stderr\n');
    expect(result.err).toContain('run shell-ok submitted');
    expect(result.err).toContain('run shell-ok done (done_by_runner), exit status 0');
  });

  it('exits with the failing command status', async () => {
    const result = await run(['fails.dstack.yml', '--url', url, '--token', server.adminToken]);

    expect(result.code).toBe(7);
    expect(result.out).toBe('before\n');
    expect(result.err).toContain('run shell-fails failed');
  });

  it('says what is wrong with its arguments or the server answer', async () => {
    const noToken = await run(['ok.dstack.yml', '--url', url]);
    const badToken = await run(['ok.dstack.yml', '--url', url, '--token', 'nope']);

    expect(noToken.code).toBe(2);
    expect(noToken.err).toContain('no token: pass --token or set DSTACK_TOKEN');
    expect(badToken.code).toBe(1);
    expect(badToken.err).toContain('Invalid token');
  });
});
