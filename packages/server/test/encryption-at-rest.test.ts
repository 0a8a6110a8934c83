import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  BackendInvalidCredentialsError,
  createCipher,
  createMemoryLogStore,
} from '@dstack/core';
import type { BackendProvider, StateStore } from '@dstack/core';
import { openStateStore } from '../src/compose/state-store.js';
import { loadServerConfig } from '../src/config/server-config.js';
import { createServer } from '../src/create-server.js';
import type { DstackServer } from '../src/create-server.js';

const sharedFixtures = join(import.meta.dirname, '../../../../shared/fixtures');

const postgresUrl =
  process.env.DSTACK_TEST_POSTGRES_URL ?? 'postgresql://postgres@127.0.0.1:5432/test';

/** A cloud-like plug-in whose credentials are an API key. */
const cloud: BackendProvider = {
  type: 'runpod',
  capabilities: { images: true, multinode: false },
  async checkConfig(settings) {
    if (settings.creds?.api_key !== 'rp-plain-api-key') {
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

const adminToken = 'admin-plain-token-0001';
let serverDir: string;
let server: DstackServer | undefined;
let store: StateStore | undefined;

beforeEach(() => {
  serverDir = mkdtempSync(join(tmpdir(), 'encryption-at-rest-'));
  copyFileSync(join(sharedFixtures, 'server/config-aes.yml'), join(serverDir, 'config.yml'));
});

afterEach(async () => {
  await server?.close();
  await store?.close();
  server = undefined;
  store = undefined;
  rmSync(serverDir, { recursive: true, force: true });
});

async function call(token: string, url: string, payload: unknown = {}) {
  const response = await server!.inject({
    method: 'POST',
    url,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    payload: JSON.stringify(payload),
  });

  return { status: response.statusCode, body: response.json() as Record<string, unknown> };
}

/**
 * Starts a server on config-aes.yml the way the bin composes it, stores a user, a secret and
 * backend credentials through the API, and returns every plaintext that must not be at rest.
 */
async function writeSensitiveData(databaseUrl?: string): Promise<string[]> {
  const config = await loadServerConfig(join(serverDir, 'config.yml'));
  store = await openStateStore({ serverDir, ...(databaseUrl ? { databaseUrl } : {}) });
  server = await createServer({
    store,
    logStore: createMemoryLogStore(),
    cipher: createCipher(config?.encryption?.keys ?? []),
    providers: [cloud],
    settings: { serverDir },
    adminToken,
    config,
    startupHooks: [],
  });

  expect((await call(adminToken, '/api/users/create', {
    username: 'alice', global_role: 'user',
  })).status).toBe(200);
  const alice = await call(adminToken, '/api/users/get_user', { username: 'alice' });
  const aliceToken = (alice.body.creds as { token: string }).token;
  const me = await call(adminToken, '/api/users/get_my_user');
  expect((await call(adminToken, '/api/project/main/secrets/create_or_update', {
    name: 'api_key', value: 'sk-plain-secret-value',
  })).status).toBe(200);
  expect((await call(adminToken, '/api/project/main/backends/create', {
    type: 'runpod', creds: { type: 'api_key', api_key: 'rp-plain-api-key' },
  })).status).toBe(200);

  // config-aes.yml also says non-admins cannot create projects.
  expect((await call(aliceToken, '/api/projects/create', { project_name: 'p2' })).status)
    .toBe(403);

  const privateKeys = [alice.body.ssh_private_key, me.body.ssh_private_key] as string[];
  expect(privateKeys.every((key) => key.includes('PRIVATE KEY'))).toBe(true);

  return [
    adminToken,
    aliceToken,
    'sk-plain-secret-value',
    'rp-plain-api-key',
    'PRIVATE KEY',
    ...privateKeys.map((key) => key.split('\n')[1]),
  ];
}

function expectNoPlaintext(cells: string[], plaintexts: string[]): void {
  for (const plaintext of plaintexts) {
    expect(cells.filter((cell) => cell.includes(plaintext)), plaintext).toEqual([]);
  }
}

function expectEncryptedWithKey2(cells: string[]): void {
  const encrypted = cells.filter((cell) => cell.startsWith('enc:'));

  // Tokens of two users, their SSH keys, the project key, one secret, auth and source_auth.
  expect(encrypted.length).toBeGreaterThanOrEqual(8);
  expect(encrypted.every((cell) => cell.startsWith('enc:aes:key2:'))).toBe(true);
}

describe('no token, secret or credential in plaintext at rest (config-aes.yml)', () => {
  it('SQLite: every cell of every table in the file', async () => {
    const plaintexts = await writeSensitiveData();
    await server!.close();
    await store!.close();
    server = undefined;
    store = undefined;

    const db = new Database(join(serverDir, 'data', 'sqlite.db'), { readonly: true });
    const tables = db
      .prepare("select name from sqlite_master where type = 'table'")
      .all() as { name: string }[];
    const cells = tables.flatMap(({ name }) => (db.prepare(`select * from "${name}"`).all() as
      Record<string, unknown>[]).flatMap((row) => Object.values(row).map(String)));
    db.close();

    expect(tables.map((table) => table.name)).toEqual(
      expect.arrayContaining(['users', 'secrets', 'backends', 'projects']),
    );
    expectNoPlaintext(cells, plaintexts);
    expectEncryptedWithKey2(cells);
  });

  it('Postgres: every cell of every table of its own database', async () => {
    const database = `encryption_at_rest_${randomBytes(4).toString('hex')}`;
    const admin = new pg.Client({ connectionString: postgresUrl });
    await admin.connect();
    await admin.query(`create database ${database}`);
    const url = new URL(postgresUrl);
    url.pathname = `/${database}`;

    try {
      const plaintexts = await writeSensitiveData(url.toString());
      await server!.close();
      await store!.close();
      server = undefined;
      store = undefined;

      const client = new pg.Client({ connectionString: url.toString() });
      await client.connect();
      const tables = await client.query<{ table_name: string }>(
        "select table_name from information_schema.tables where table_schema = 'public'",
      );
      const cells: string[] = [];

      for (const { table_name: name } of tables.rows) {
        const rows = await client.query(`select row_to_json(t)::text as row from "${name}" t`);
        const values = rows.rows.flatMap((row: { row: string }) =>
          Object.values(JSON.parse(row.row) as Record<string, unknown>).map((value) =>
            typeof value === 'string' ? value : JSON.stringify(value)));
        cells.push(...values);
      }

      await client.end();
      expect(tables.rows.map((row) => row.table_name)).toEqual(
        expect.arrayContaining(['users', 'secrets', 'backends', 'projects']),
      );
      expectNoPlaintext(cells, plaintexts);
      expectEncryptedWithKey2(cells);
    } finally {
      await admin.query(`drop database if exists ${database} with (force)`);
      await admin.end();
    }
  });
  // The fleet spec is stored without private keys; they live encrypted per instance.
  it('SQLite: an SSH fleet host key is not in plaintext anywhere', async () => {
    await writeSensitiveData();
    // A real key (applies refuse one no login could use); its body is what must not leak.
    const pem = generateKeyPairSync('ed25519', {
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
      publicKeyEncoding: { type: 'spki', format: 'pem' },
    }).privateKey;
    const hostKey = pem.split('\n')[1] as string;
    const applied = await call(adminToken, '/api/project/main/fleets/apply', {
      plan: {
        spec: {
          configuration: {
            type: 'fleet', name: 'on-prem', ssh_config: {
              user: 'me', hosts: ['127.0.0.1'], ssh_key: {
                public: 'ssh-ed25519 AAAA',
                private: pem,
              },
            },
          },
          profile: {},
          autocreated: false,
        },
        current_resource: null,
      },
      force: false,
    });
    expect(applied.status).toBe(200);
    const [instance] = await store!.find('instances', { where: { backend: 'remote' } });
    expect(instance.remoteConnectionInfo).toMatch(/^enc:aes:key2:/);
    await server!.close();
    await store!.close();
    server = undefined;
    store = undefined;

    const db = new Database(join(serverDir, 'data', 'sqlite.db'), { readonly: true });
    const fleets = JSON.stringify(db.prepare('select * from fleets').all());
    db.close();

    expect(fleets).not.toContain(hostKey);
  });
});
