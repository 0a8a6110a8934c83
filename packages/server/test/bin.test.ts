import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer as createNetServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { copyFile, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

// The package's own bin entry, as `npx @dstack/server` runs it.
const bin = fileURLToPath(new URL('../bin/dstack-server.js', import.meta.url));
const fixtures = join(import.meta.dirname, '../../../../shared/fixtures/server');

interface Started {
  child: ChildProcess;
  url: string;
  token: string;
}

let dir: string;
const children = new Set<ChildProcess>();

function run(args: string[], env: Record<string, string> = {}): ChildProcess {
  const child = spawn(process.execPath, [bin, '--port', '0', ...args], {
    env: { ...process.env, DSTACK_SERVER_DIR: dir, DSTACK_SERVER_ADMIN_TOKEN: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

function collect(child: ChildProcess): { text: () => string } {
  let text = '';
  child.stdout?.on('data', (chunk: Buffer) => (text += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (text += chunk.toString()));
  return { text: () => text };
}

async function start(args: string[] = []): Promise<Started> {
  const child = run(args);
  const output = collect(child);

  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no start:\n${output.text()}`)), 20_000);
    const check = (): void => {
      const token = /The admin token is (\S+)/.exec(output.text());
      const url = /The dstack server \S+ is running at (\S+)/.exec(output.text());

      if (token && url) {
        clearTimeout(timer);
        resolve({ child, url: url[1] as string, token: token[1] as string });
      }
    };
    child.stdout?.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${String(code)}:\n${output.text()}`));
    });
  });
}

async function exitOf(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) {
    return child.exitCode;
  }

  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

async function stop(child: ChildProcess): Promise<number | null> {
  const exited = exitOf(child);
  child.kill('SIGTERM');
  return exited;
}

async function api(server: Started, path: string, token: string, body?: unknown) {
  const response = await fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body ?? {}),
  });
  return { status: response.status, json: (await response.json()) as any };
}

beforeAll(() => {
  if (!existsSync(bin)) {
    throw new Error('build the server first: npx turbo run build --filter=@dstack/server...');
  }
});

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dstack-bin-'));
});

afterEach(async () => {
  for (const child of children) {
    child.kill('SIGKILL');
    await exitOf(child);
  }

  await rm(dir, { recursive: true, force: true });
});

describe('the dstack-server bin', () => {
  it('keeps the admin token, users and projects across a restart', async () => {
    const first = await start(['--token', 'first-admin-token']);
    expect(first.token).toBe('first-admin-token');

    const created = await api(first, '/api/users/create', first.token, {
      username: 'alice', global_role: 'user',
    });
    expect(created.status).toBe(200);
    const alice = (await api(first, '/api/users/get_user', first.token, { username: 'alice' }))
      .json.creds.token;
    const project = await api(first, '/api/projects/create', alice, { project_name: 'research' });
    expect(project.status).toBe(200);
    expect(await stop(first.child)).toBe(0);

    const second = await start(['--token', 'ignored-token']);
    expect(second.token).toBe('first-admin-token');

    const users = await api(second, '/api/users/list', second.token);
    expect(users.json.map((user: { username: string }) => user.username).sort())
      .toEqual(['admin', 'alice']);

    const projects = await api(second, '/api/projects/list', alice);
    expect(projects.json.map((p: { project_name: string }) => p.project_name)).toEqual([
      'research',
    ]);

    const main = await api(second, '/api/projects/main/get', second.token);
    expect(main.json.members).toMatchObject([
      { user: { username: 'admin' }, project_role: 'admin' },
    ]);
    expect(await stop(second.child)).toBe(0);
  });

  it('stops cleanly on a SIGTERM sent as soon as it prints its URL', async () => {
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const started = await start();
      expect(await stop(started.child)).toBe(0);
    }
  });

  it('refuses a second server on the same SQLite directory and says why', async () => {
    const first = await start();
    const second = run([]);
    const output = collect(second);

    expect(await exitOf(second)).not.toBe(0);
    expect(output.text()).toMatch(/one server process/);
    expect(output.text()).not.toContain('is running at');

    const health = await fetch(`${first.url}/healthcheck`);
    expect(await health.json()).toEqual({ status: 'running' });
  });

  for (const [fixture, expected] of [
    ['config-typo.yml', ['projects[0].backend: unknown key']],
    ['config-bad-key.yml', [
      'encryption.keys[0].name: the key name must be alphanumeric',
      'encryption.keys[0].secret: the secret must be base64 of exactly 32 bytes (got 5 bytes)',
    ]],
  ] as const) {
    it(`stops on ${fixture}, naming the file and every problem, and writes nothing`, async () => {
      const path = join(dir, 'config.yml');
      await copyFile(join(fixtures, fixture), path);
      const child = run([]);
      const output = collect(child);

      expect(await exitOf(child)).toBe(1);
      expect(output.text()).toContain(path);

      for (const problem of expected) {
        expect(output.text()).toContain(problem);
      }

      expect(await readdir(dir)).toEqual(['config.yml']);
    });
  }

  it('stops on a backend type it does not know, and writes nothing', async () => {
    const path = join(dir, 'config.yml');
    await writeFile(path, 'projects:\n  - name: main\n    backends:\n      - type: nosuchcloud\n');
    const child = run([]);
    const output = collect(child);

    expect(await exitOf(child)).toBe(1);
    expect(output.text()).toContain(`Invalid ${path}:`);
    expect(output.text()).toContain(
      'projects[0].backends[0].type: unknown backend type "nosuchcloud"',
    );
    expect(await readdir(dir)).toEqual(['config.yml']);
  });

  it('stops on two encryption keys of the same name, naming both, and writes nothing',
    async () => {
      const path = join(dir, 'config.yml');
      const secret = (fill: number): string => Buffer.alloc(32, fill).toString('base64');
      await writeFile(path, [
        'projects:',
        '  - name: main',
        'encryption:',
        '  keys:',
        `    - { type: aes, name: key1, secret: ${secret(1)} }`,
        `    - { type: aes, name: key1, secret: ${secret(2)} }`,
        '',
      ].join('\n'));
      const child = run([]);
      const output = collect(child);

      expect(await exitOf(child)).toBe(1);
      expect(output.text()).toContain(`Invalid ${path}:`);
      expect(output.text()).toContain(
        'encryption.keys[1].name: the key name "key1" is already the name of encryption.keys[0]',
      );
      expect(output.text()).not.toContain('is running at');
      expect(await readdir(dir)).toEqual(['config.yml']);
    });

  it('stops on a port in use before writing anything, and starts once it is free', async () => {
    const holder = createNetServer();
    await new Promise<void>((resolve) => holder.listen({ host: '127.0.0.1', port: 0 }, resolve));
    const { port } = holder.address() as AddressInfo;

    try {
      const child = run(['--port', String(port)]);
      const output = collect(child);

      expect(await exitOf(child)).toBe(1);
      expect(output.text()).toContain(`Cannot listen on 127.0.0.1:${port}:`);
      expect(output.text()).toContain('EADDRINUSE');
      expect(output.text()).not.toContain('The admin token is');
      expect(await readdir(dir)).toEqual([]);
    } finally {
      await new Promise((resolve) => holder.close(resolve));
    }

    const started = await start(['--port', String(port)]);
    expect(started.url).toBe(`http://127.0.0.1:${port}`);
    expect(await readdir(dir)).toContain('config.yml');
    expect(await stop(started.child)).toBe(0);
  });

  it('applies config.yml: projects and default_permissions', async () => {
    await copyFile(join(fixtures, 'config-aes.yml'), join(dir, 'config.yml'));
    const server = await start();
    await api(server, '/api/users/create', server.token, { username: 'bob', global_role: 'user' });
    const bob = (await api(server, '/api/users/get_user', server.token, { username: 'bob' }))
      .json.creds.token;

    const denied = await api(server, '/api/projects/create', bob, { project_name: 'nope' });
    expect(denied.status).toBe(403);
    expect(denied.json).toEqual({ msg: 'User cannot create projects', code: null });
    expect(await stop(server.child)).toBe(0);
  });

  it('rejects an unknown flag with the usage text', async () => {
    const child = run(['--prot', '1']);
    const output = collect(child);

    expect(await exitOf(child)).toBe(2);
    expect(output.text()).toContain('Usage: dstack-server');
  });
});
