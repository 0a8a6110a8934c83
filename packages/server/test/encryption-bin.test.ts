import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

const bin = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const key1 = { type: 'aes', name: 'key1', secret: Buffer.alloc(32, 0x31).toString('base64') };
const key2 = { type: 'aes', name: 'key2', secret: Buffer.alloc(32, 0x32).toString('base64') };
const adminToken = 'bin-rotation-admin-token';

let dir: string;
const children = new Set<ChildProcess>();

function spawnBin(args: string[]): { child: ChildProcess; output: () => string } {
  const child = spawn(process.execPath, [bin, ...args], {
    env: {
      ...process.env,
      DSTACK_SERVER_DIR: dir,
      DSTACK_SERVER_ADMIN_TOKEN: adminToken,
      DSTACK_SERVER_BACKGROUND_PROCESSING_DISABLED: '1',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  child.stdout?.on('data', (chunk: Buffer) => (text += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (text += chunk.toString()));
  children.add(child);
  child.once('exit', () => children.delete(child));

  return { child, output: () => text };
}

async function exitOf(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) {
    return child.exitCode;
  }

  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/** Starts the server as a process and resolves with its URL once it serves. */
async function startServer(): Promise<{ child: ChildProcess; url: string }> {
  const { child, output } = spawnBin(['--port', '0']);

  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no start:\n${output()}`)), 20_000);
    child.stdout?.on('data', () => {
      const url = /is running at (\S+)/.exec(output());

      if (url) {
        clearTimeout(timer);
        resolve({ child, url: url[1] as string });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${String(code)}:\n${output()}`));
    });
  });
}

async function stopServer(child: ChildProcess): Promise<void> {
  const exited = exitOf(child);
  child.kill('SIGTERM');
  await exited;
}

async function api(url: string, path: string, token: string, body: unknown = {}) {
  const response = await fetch(`${url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });

  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}

function writeConfig(keys: object[]): void {
  const lines = ['projects:', '  - name: main', 'encryption:', '  keys:'];
  keys.forEach((key) => lines.push(`    - ${JSON.stringify(key)}`));
  writeFileSync(join(dir, 'config.yml'), `${lines.join('\n')}\n`);
}

beforeAll(() => {
  if (!existsSync(bin)) {
    throw new Error('build the server first: npx turbo run build --filter=@dstack/server...');
  }
});

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'encryption-bin-'));
});

afterEach(async () => {
  for (const child of children) {
    child.kill('SIGKILL');
    await exitOf(child);
  }

  rmSync(dir, { recursive: true, force: true });
});

describe('dstack-server reencrypt as a process', () => {
  it('rotates key1 to key2 between two runs of the server', async () => {
    writeConfig([key1]);
    let server = await startServer();
    expect((await api(server.url, '/api/users/create', adminToken, {
      username: 'alice', global_role: 'user',
    })).status).toBe(200);
    const alice = await api(server.url, '/api/users/get_user', adminToken, { username: 'alice' });
    const aliceToken = (alice.json.creds as { token: string }).token;
    expect((await api(server.url, '/api/project/main/secrets/create_or_update', adminToken, {
      name: 'api_key', value: 'sk-bin-secret',
    })).status).toBe(200);
    await stopServer(server.child);
    const database = readFileSync(join(dir, 'data', 'sqlite.db'));
    expect(database.includes('sk-bin-secret')).toBe(false);

    writeConfig([key2, key1]);
    const command = spawnBin(['reencrypt']);
    expect(await exitOf(command.child)).toBe(0);
    expect(command.output()).toContain('with key key2 (aes)');
    expect(command.output()).toContain('  secrets: 1 rows; rewritten: 1 from aes:key1');
    expect(command.output()).toMatch(
      /\d+ values rewritten; every encrypted value now uses key key2/,
    );

    writeConfig([key2]);
    server = await startServer();
    const me = await api(server.url, '/api/users/get_my_user', aliceToken);
    expect(me.status).toBe(200);
    const secret = await api(server.url, '/api/project/main/secrets/get', adminToken, {
      name: 'api_key',
    });
    expect(secret.json.value).toBe('sk-bin-secret');
    await stopServer(server.child);

    const again = spawnBin(['reencrypt']);
    expect(await exitOf(again.child)).toBe(0);
    expect(again.output()).toContain('0 values rewritten');
  });

  it('exits 2 on a bad argument and 1 when the keys cannot be read', async () => {
    const bad = spawnBin(['reencrypt', '--nope']);

    expect(await exitOf(bad.child)).toBe(2);
    expect(bad.output()).toContain('reencrypt: unknown argument --nope');

    writeFileSync(join(dir, 'config.yml'), readFileSync(
      join(import.meta.dirname, '../../../../shared/fixtures/server/config-bad-key.yml'),
    ));
    const badKey = spawnBin(['reencrypt']);
    expect(await exitOf(badKey.child)).toBe(1);
    expect(badKey.output()).toContain('encryption.keys[0].name');
  });
});
