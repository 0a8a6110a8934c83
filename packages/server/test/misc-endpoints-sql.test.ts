import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { createCipher, createMemoryLogStore, getRepoCode } from '@dstack/core';
import type { StateStore } from '@dstack/core';
import { openStateStore } from '../src/compose/state-store.js';
import { createServer } from '../src/create-server.js';
import type { DstackServer } from '../src/create-server.js';
import { post } from './helpers.js';

const postgresUrl =
  process.env.DSTACK_TEST_POSTGRES_URL ?? 'postgresql://postgres@127.0.0.1:5432/test';

const aesKey = { type: 'aes', name: 'k1', secret: Buffer.alloc(32, 3).toString('base64') } as const;

let serverDir: string | undefined;
let server: DstackServer | undefined;
let store: StateStore | undefined;
let cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  await server?.close();
  await store?.close();
  server = undefined;
  store = undefined;

  for (const cleanup of cleanups.reverse()) {
    await cleanup();
  }

  cleanups = [];

  if (serverDir !== undefined) {
    rmSync(serverDir, { recursive: true, force: true });
    serverDir = undefined;
  }
});

async function start(databaseUrl?: string): Promise<DstackServer> {
  serverDir = mkdtempSync(join(tmpdir(), 'misc-endpoints-sql-'));
  store = await openStateStore({ serverDir, ...(databaseUrl ? { databaseUrl } : {}) });
  server = await createServer({
    store,
    logStore: createMemoryLogStore(),
    cipher: createCipher([aesKey]),
    startupHooks: [],
    settings: { serverDir },
  });

  return server;
}

async function ownPostgresDatabase(): Promise<string> {
  const database = `misc_endpoints_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: postgresUrl });
  await admin.connect();
  await admin.query(`create database ${database}`);
  cleanups.push(async () => {
    await admin.query(`drop database if exists ${database} with (force)`);
    await admin.end();
  });
  const url = new URL(postgresUrl);
  url.pathname = `/${database}`;

  return url.toString();
}

function ed25519Key(): string {
  const { publicKey } = generateKeyPairSync('ed25519');
  const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url');
  const field = (data: Buffer): Buffer => {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(data.length);
    return Buffer.concat([length, data]);
  };
  const blob = Buffer.concat([field(Buffer.from('ssh-ed25519')), field(raw)]);
  return `ssh-ed25519 ${blob.toString('base64')} sql@test`;
}

async function exercise(app: DstackServer): Promise<void> {
  const token = app.adminToken;
  const info = { repo_type: 'remote', repo_name: 'r' };
  const creds = { clone_url: 'https://example.com/r.git', private_key: 'PK', oauth_token: null };

  // Repos: creds per user, twice (the second init updates the same row), code blobs as bytes.
  for (let round = 0; round < 2; round += 1) {
    const init = await post(app, '/api/project/main/repos/init', token,
      { repo_id: 'r1', repo_info: info, repo_creds: creds });
    expect(init.statusCode).toBe(200);
  }

  const got = await post(app, '/api/project/main/repos/get', token,
    { repo_id: 'r1', include_creds: true });
  expect(got.json()).toEqual({ repo_id: 'r1', repo_info: info, repo_creds: creds });
  expect(await app.ctx.store.count('repo_creds')).toBe(1);

  const blob = randomBytes(3000);
  const boundary = 'sqlboundary';
  const payload = Buffer.concat([
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; `
      + `filename="h1"\r\nContent-Type: application/octet-stream\r\n\r\n`),
    blob,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  for (let round = 0; round < 2; round += 1) {
    const uploaded = await app.inject({
      method: 'POST',
      url: '/api/project/main/repos/upload_code?repo_id=r1',
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': `multipart/form-data; boundary=${boundary}`,
      },
      payload,
    });
    expect(uploaded.statusCode).toBe(200);
  }

  const repo = await app.ctx.store.findOne('repos', { where: { name: 'r1' } });
  expect(await getRepoCode(app.ctx.store, repo!.id, 'h1')).toEqual(blob);

  // Public keys: the unique index turns a second add of the same key into resource_exists.
  const key = ed25519Key();
  expect((await post(app, '/api/users/public_keys/add', token, { key })).statusCode).toBe(200);
  const again = await post(app, '/api/users/public_keys/add', token, { key });
  expect(again.json()).toEqual({ detail: [{ msg: 'Resource exists', code: 'resource_exists' }] });

  // Events: keyset pages over the SQL store, all of them once, in order.
  await post(app, '/api/project/main/secrets/create_or_update', token, { name: 'A', value: 'a' });
  await post(app, '/api/project/main/secrets/delete', token, { secrets_names: ['A'] });
  const all = (await post(app, '/api/events/list', token, {})).json() as
    { id: string; recorded_at: string; message: string }[];
  expect(all.map((event) => event.message)).toEqual(expect.arrayContaining([
    'Secret created', 'Secret deleted', 'Public key added. Fingerprint: '
      + (await post(app, '/api/users/public_keys/list', token)).json()[0].fingerprint,
  ]));

  const paged: string[] = [];
  let prev: { recorded_at: string; id: string } | null = null;

  for (;;) {
    const page = (await post(app, '/api/events/list', token, {
      limit: 2,
      ...(prev === null ? {} : { prev_recorded_at: prev.recorded_at, prev_id: prev.id }),
    })).json() as { id: string; recorded_at: string }[];

    if (page.length === 0) {
      break;
    }

    paged.push(...page.map((event) => event.id));
    prev = page[page.length - 1]!;
  }

  expect(paged).toEqual(all.map((event) => event.id));

  await post(app, '/api/project/main/repos/delete', token, { repos_ids: ['r1'] });
  expect(await app.ctx.store.count('codes')).toBe(0);
  expect(await app.ctx.store.count('repo_creds')).toBe(0);
}

describe('repos, public keys and events on SQL stores', () => {
  it('SQLite', async () => {
    await exercise(await start());
  });

  it('Postgres, in a database of its own', async () => {
    await exercise(await start(await ownPostgresDatabase()));
  });
});
