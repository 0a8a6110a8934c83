import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  BackendInvalidCredentialsError,
  createCipher,
  createLocalBackendProvider,
  createMemoryLogStore,
  encryptedColumns,
} from '@dstack/core';
import type { BackendProvider, StateStore } from '@dstack/core';
import { runReencryptCommand } from '../src/commands/reencrypt.js';
import { openStateStore } from '../src/compose/state-store.js';
import { loadServerConfig } from '../src/config/server-config.js';
import { createServer } from '../src/create-server.js';
import type { DstackServer } from '../src/create-server.js';

const key1 = { type: 'aes', name: 'key1', secret: Buffer.alloc(32, 0x11).toString('base64') };
const key2 = { type: 'aes', name: 'key2', secret: Buffer.alloc(32, 0x22).toString('base64') };

/** A cloud-like plug-in whose credentials are an API key. */
const cloud: BackendProvider = {
  type: 'runpod',
  capabilities: { images: true, multinode: false },
  async checkConfig(settings) {
    if (settings.creds?.api_key !== 'rp-api-key') {
      throw new BackendInvalidCredentialsError('Invalid credentials', [['creds', 'api_key']]);
    }
  },
  getOffers: async () => [],
  createInstance: async () => {
    throw new Error('not used');
  },
  terminateInstance: async () => undefined,
  agent: () => {
    throw new Error('not used');
  },
};

let serverDir: string;
let running: { server: DstackServer; store: StateStore } | undefined;

function writeConfig(keys: object[]): void {
  const lines = ['projects:', '  - name: main', 'encryption:', '  keys:'];

  for (const key of keys) {
    lines.push(`    - ${JSON.stringify(key)}`);
  }

  writeFileSync(join(serverDir, 'config.yml'), `${lines.join('\n')}\n`);
}

const postgresUrl =
  process.env.DSTACK_TEST_POSTGRES_URL ?? 'postgresql://postgres@127.0.0.1:5432/test';

/** Starts the server the way the bin composes it: config.yml, its cipher, the state store. */
async function start(databaseUrl?: string): Promise<DstackServer> {
  const config = await loadServerConfig(join(serverDir, 'config.yml'));
  const store = await openStateStore({ serverDir, ...(databaseUrl ? { databaseUrl } : {}) });
  const server = await createServer({
    store,
    logStore: createMemoryLogStore(),
    cipher: createCipher(config?.encryption?.keys ?? []),
    providers: [cloud, createLocalBackendProvider({ serverDir })],
    settings: { serverDir },
    adminToken: 'admin-token-value',
    config,
    startupHooks: [],
  });
  running = { server, store };

  return server;
}

async function stop(): Promise<void> {
  await running?.server.close();
  await running?.store.close();
  running = undefined;
}

async function call(server: DstackServer, token: string, url: string, payload: unknown = {}) {
  const response = await server.inject({
    method: 'POST',
    url,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    payload: JSON.stringify(payload),
  });

  return { status: response.statusCode, body: response.json() as Record<string, unknown> };
}

/** Every encrypted value in the SQLite file, by `table.column`, read with no server code. */
function encryptedValuesOnDisk(): string[] {
  const db = new Database(join(serverDir, 'data', 'sqlite.db'), { readonly: true });

  try {
    return Object.entries(encryptedColumns).flatMap(([table, columns]) => columns.flatMap(
      (column) => {
        const name = column.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);
        const rows = db.prepare(`select ${name} as value from ${table}`).all() as {
          value: string | null;
        }[];

        return rows
          .filter((row) => row.value !== null)
          .map((row) => `${table}.${column} ${row.value}`);
      },
    ));
  } finally {
    db.close();
  }
}

function captureIo(env: Record<string, string> = {}) {
  const out: string[] = [];
  const err: string[] = [];

  return {
    out,
    err,
    io: {
      stdout: (line: string) => out.push(line),
      stderr: (line: string) => err.push(line),
      env: { DSTACK_SERVER_DIR: serverDir, ...env },
    },
  };
}

beforeEach(() => {
  serverDir = mkdtempSync(join(tmpdir(), 'encryption-rotation-'));
});

afterEach(async () => {
  await stop();
  rmSync(serverDir, { recursive: true, force: true });
});

describe('key rotation with dstack-server reencrypt', () => {
  it('writes under key1, re-encrypts with key2 first, reads all back with key2 alone', async () => {
    writeConfig([key1]);
    let server = await start();
    const admin = 'admin-token-value';
    const created = await call(server, admin, '/api/users/create', {
      username: 'alice', global_role: 'user',
    });
    expect(created.status).toBe(200);
    const alice = await call(server, admin, '/api/users/get_user', { username: 'alice' });
    const aliceToken = (alice.body.creds as { token: string }).token;
    const aliceKey = alice.body.ssh_private_key as string;
    expect(aliceKey).toContain('PRIVATE KEY');

    const secret = await call(server, admin, '/api/project/main/secrets/create_or_update', {
      name: 'api_key', value: 'sk-rotated-secret',
    });
    expect(secret.status).toBe(200);
    const backend = await call(server, admin, '/api/project/main/backends/create', {
      type: 'runpod', creds: { type: 'api_key', api_key: 'rp-api-key' },
    });
    expect(backend.status).toBe(200);
    const projectKey = server.ctx.cipher.decrypt(
      (await server.ctx.store.findOne('projects', { where: { name: 'main' } }))!.sshPrivateKey!,
    );
    await stop();

    const before = encryptedValuesOnDisk();
    expect(before.map((value) => value.split(' ')[0]).sort()).toEqual([
      'backends.auth', 'backends.sourceAuth', 'projects.sshPrivateKey', 'secrets.value',
      'users.sshPrivateKey', 'users.sshPrivateKey', 'users.token', 'users.token',
    ]);
    expect(before.every((value) => value.includes(' enc:aes:key1:'))).toBe(true);

    writeConfig([key2, key1]);
    const first = captureIo();
    expect(await runReencryptCommand([], first.io)).toBe(0);
    expect(first.err).toEqual([]);
    expect(first.out[0]).toBe(
      `re-encrypting SQLite ${join(serverDir, 'data', 'sqlite.db')} with key key2 (aes)`,
    );
    expect(first.out).toContain('  users: 2/2 rows');
    expect(first.out).toContain('  secrets: 1/1 rows');
    expect(first.out).toContain('  users: 2 rows; rewritten: 4 from aes:key1; already current: 0');
    expect(first.out).toContain(
      '  secrets: 1 rows; rewritten: 1 from aes:key1; already current: 0',
    );
    expect(first.out).toContain(
      '  backends: 1 rows; rewritten: 2 from aes:key1; already current: 0',
    );
    expect(first.out).toContain(
      '  projects: 1 rows; rewritten: 1 from aes:key1; already current: 0',
    );
    expect(first.out.at(-1)).toBe(
      `${before.length} values rewritten; every encrypted value now uses key key2`,
    );

    const second = captureIo();
    expect(await runReencryptCommand([], second.io)).toBe(0);
    expect(second.out.at(-1)).toBe('0 values rewritten; every encrypted value now uses key key2');

    const after = encryptedValuesOnDisk();
    expect(after).toHaveLength(before.length);
    expect(after.every((value) => value.includes(' enc:aes:key2:'))).toBe(true);

    writeConfig([key2]);
    server = await start();

    const me = await call(server, admin, '/api/users/get_my_user');
    expect(me.status).toBe(200);
    expect((me.body.creds as { token: string }).token).toBe(admin);
    const aliceAgain = await call(server, aliceToken, '/api/users/get_my_user');
    expect(aliceAgain.status).toBe(200);
    expect(aliceAgain.body.ssh_private_key).toBe(aliceKey);
    expect((await call(server, admin, '/api/project/main/secrets/get', { name: 'api_key' })).body)
      .toMatchObject({ name: 'api_key', value: 'sk-rotated-secret' });
    expect(
      (await call(server, admin, '/api/project/main/backends/runpod/config_info')).body,
    ).toEqual({ type: 'runpod', creds: { type: 'api_key', api_key: 'rp-api-key' } });
    const project = await server.ctx.store.findOne('projects', { where: { name: 'main' } });
    expect(server.ctx.cipher.decrypt(project!.sshPrivateKey!)).toBe(projectKey);
  });

  it('refuses to finish while some values are under a key it does not have', async () => {
    writeConfig([key1]);
    const server = await start();
    await call(server, 'admin-token-value', '/api/project/main/secrets/create_or_update', {
      name: 'kept', value: 'v',
    });
    await stop();

    writeConfig([key2]);
    const run = captureIo();

    expect(await runReencryptCommand([], run.io)).toBe(1);
    expect(run.out).toContain(
      '  secrets: 1 rows; rewritten: none; already current: 0; unreadable: 1 under aes:key1',
    );
    expect(run.err.join('\n')).toMatch(/values cannot be decrypted/);
    expect(encryptedValuesOnDisk().every((value) => value.includes(' enc:aes:key1:'))).toBe(true);
  });

  it('works beside a running server that already writes with the new key', async () => {
    writeConfig([key1]);
    let server = await start();
    const admin = 'admin-token-value';
    await call(server, admin, '/api/project/main/secrets/create_or_update', {
      name: 'old', value: 'written-under-key1',
    });
    await stop();

    writeConfig([key2, key1]);
    server = await start();
    const beside = captureIo();
    const [code, written] = await Promise.all([
      runReencryptCommand(['--batch-size', '1'], beside.io),
      call(server, admin, '/api/project/main/secrets/create_or_update', {
        name: 'meanwhile', value: 'written-during-the-run',
      }),
    ]);

    expect(code).toBe(0);
    expect(written.status).toBe(200);
    expect(encryptedValuesOnDisk().every((value) => value.includes(' enc:aes:key2:'))).toBe(true);
    const secrets = ['old', 'meanwhile'].map((name) => call(
      server, admin, '/api/project/main/secrets/get', { name },
    ));
    expect((await Promise.all(secrets)).map((response) => response.body.value)).toEqual([
      'written-under-key1', 'written-during-the-run',
    ]);
  });

  it('rotates a Postgres state too', async () => {
    const database = `encryption_rotation_${randomBytes(4).toString('hex')}`;
    const admin = new pg.Client({ connectionString: postgresUrl });
    await admin.connect();
    await admin.query(`create database ${database}`);
    const url = new URL(postgresUrl);
    url.pathname = `/${database}`;
    const databaseUrl = url.toString();

    try {
      writeConfig([key1]);
      let server = await start(databaseUrl);
      for (const name of ['pg_secret', 'pg_other', 'pg_third']) {
        await call(server, 'admin-token-value', '/api/project/main/secrets/create_or_update', {
          name, value: `${name.replace('_', '-')}-value`,
        });
      }

      await stop();

      writeConfig([key2, key1]);
      const run = captureIo({ DSTACK_DATABASE_URL: databaseUrl });
      expect(await runReencryptCommand(['--batch-size', '1'], run.io)).toBe(0);
      expect(run.out[0]).toMatch(/^re-encrypting Postgres postgresql:.*encryption_rotation_/);
      expect(run.out).toContain(
        '  secrets: 3 rows; rewritten: 3 from aes:key1; already current: 0',
      );

      writeConfig([key2]);
      server = await start(databaseUrl);
      const secret = await call(server, 'admin-token-value', '/api/project/main/secrets/get', {
        name: 'pg_secret',
      });
      expect(secret.body.value).toBe('pg-secret-value');
      const stored = await server.ctx.store.find('secrets');
      expect(stored.map((row) => server.ctx.cipher.decrypt(row.value)).sort()).toEqual([
        'pg-other-value', 'pg-secret-value', 'pg-third-value',
      ]);
      const rows = await server.ctx.store.find('users');
      expect(rows.every((row) => row.token.startsWith('enc:aes:key2:'))).toBe(true);
      await stop();
    } finally {
      await stop();
      await admin.query(`drop database if exists ${database} with (force)`);
      await admin.end();
    }
  });

  it('refuses to write plaintext without being told, and bad arguments', async () => {
    writeConfig([{ type: 'identity' }, key2]);
    const plain = captureIo();

    expect(await runReencryptCommand([], plain.io)).toBe(1);
    expect(plain.err.join()).toMatch(/--allow-plaintext/);

    const bad = captureIo();
    expect(await runReencryptCommand(['--batch-size', '0'], bad.io)).toBe(2);
    expect(bad.err.join()).toMatch(/--batch-size needs a whole number/);

    rmSync(join(serverDir, 'config.yml'));
    const missing = captureIo();
    expect(await runReencryptCommand([], missing.io)).toBe(1);
    expect(missing.err.join()).toMatch(/there are no encryption keys/);
  });
});
