import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EventRecord, StateStore } from '@dstack/core';
import { openPostgresPool } from '@dstack/storage-postgres';
import { ReplicaLockError } from '@dstack/storage-sqlite';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  isPostgresUrl,
  openStateStore,
  postgresPoolMax,
  readStateStoreEnv,
  redactDatabaseUrl,
} from '../src/compose/state-store.js';

const postgresBase =
  process.env.DSTACK_TEST_POSTGRES_URL ?? 'postgresql://postgres@127.0.0.1:5432/test';
const schema = `compose_${randomBytes(4).toString('hex')}`;
const admin = openPostgresPool({ connectionString: postgresBase, max: 2 });
const opened: StateStore[] = [];
const dirs: string[] = [];

function event(message: string): EventRecord {
  return { id: randomUUID(), message, recordedAt: Date.now(), actorUserId: null, targets: [] };
}

function serverDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'dstack-compose-'));
  dirs.push(dir);
  return dir;
}

function schemaUrl(scheme: string, extra = ''): string {
  const url = new URL(postgresBase);
  url.searchParams.set('options', `-c search_path=${schema}`);
  return `${url.toString().replace(/^postgresql:/, scheme)}${extra}`;
}

async function open(options: Parameters<typeof openStateStore>[0]): Promise<StateStore> {
  const store = await openStateStore(options);
  opened.push(store);
  return store;
}

beforeAll(async () => {
  await admin.query(`create schema "${schema}"`);
});

afterEach(async () => {
  await Promise.all(opened.splice(0).map((store) => store.close()));
});

afterAll(async () => {
  await admin.query(`drop schema if exists "${schema}" cascade`);
  await admin.end();
  dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true }));
});

describe('redactDatabaseUrl', () => {
  it('hides the password in the user part and in a password parameter', () => {
    expect(redactDatabaseUrl('postgresql://dstack:s3cr%40t@db.internal:5433/state')).toBe(
      'postgresql://dstack:***@db.internal:5433/state',
    );
    expect(redactDatabaseUrl('postgresql+asyncpg://u:pw@h/db?password=pw2&sslmode=require')).toBe(
      'postgresql+asyncpg://u:***@h/db?password=***&sslmode=require',
    );
    expect(redactDatabaseUrl('postgres://u@h:5432/db')).toBe('postgres://u@h:5432/db');
    expect(redactDatabaseUrl('not a url //u:secret@host')).toBe('not a url //u:***@host');
  });
});

describe('reading the environment', () => {
  it('tells Postgres URLs from others', () => {
    expect(isPostgresUrl('postgresql+asyncpg://u@h/db')).toBe(true);
    expect(isPostgresUrl('postgresql://u@h/db')).toBe(true);
    expect(isPostgresUrl('postgres://u@h/db')).toBe(true);
    expect(isPostgresUrl('sqlite+aiosqlite:////tmp/x.db')).toBe(false);
    expect(isPostgresUrl(undefined)).toBe(false);
  });

  it('sizes the pool as pool size plus overflow, 20 + 20 by default', () => {
    expect(postgresPoolMax()).toBe(40);
    expect(postgresPoolMax(5, 0)).toBe(5);
    expect(postgresPoolMax(3, 7)).toBe(10);
  });

  it('reads DSTACK_DATABASE_URL and the pool variables, rejecting non-numbers', () => {
    expect(
      readStateStoreEnv({
        DSTACK_DATABASE_URL: ' postgres://u@h/db ',
        DSTACK_DB_POOL_SIZE: '5',
        DSTACK_DB_MAX_OVERFLOW: '0',
      }),
    ).toEqual({ databaseUrl: 'postgres://u@h/db', poolSize: 5, maxOverflow: 0 });
    expect(readStateStoreEnv({})).toEqual({
      databaseUrl: undefined,
      poolSize: undefined,
      maxOverflow: undefined,
    });
    expect(() => readStateStoreEnv({ DSTACK_DB_POOL_SIZE: 'ten' })).toThrow(
      'DSTACK_DB_POOL_SIZE must be a whole number',
    );
  });
});

describe('openStateStore on SQLite', () => {
  it('keeps the state at <serverDir>/data/sqlite.db, migrated and persistent', async () => {
    const dir = serverDir();
    const first = await openStateStore({ serverDir: dir });
    const row = event('kept');
    await first.insert('events', row);
    await first.close();

    expect(existsSync(join(dir, 'data', 'sqlite.db'))).toBe(true);
    const second = await open({ serverDir: dir });
    expect(await second.get('events', row.id)).toEqual(row);
  });

  it('refuses a second server on the same directory and says why', async () => {
    const dir = serverDir();
    await open({ serverDir: dir });

    const second = openStateStore({ serverDir: dir });

    await expect(second).rejects.toBeInstanceOf(ReplicaLockError);
    await expect(second).rejects.toThrow(/one server process/);
  });

  it('opens next to a running server when asked not to take the replica lock', async () => {
    const dir = serverDir();
    const running = await open({ serverDir: dir });
    const tool = await open({ serverDir: dir, replicaLock: false });
    const row = event('from the tool');

    await tool.insert('events', row);

    expect(await running.get('events', row.id)).toEqual(row);
  });

  it('lets the directory be opened again after close', async () => {
    const dir = serverDir();
    await (await openStateStore({ serverDir: dir })).close();

    const again = await open({ serverDir: dir });

    expect(await again.count('users')).toBe(0);
  });

  it('rejects a database URL of a kind it does not support', async () => {
    await expect(
      openStateStore({ serverDir: serverDir(), databaseUrl: 'mysql://u:pw@h/db' }),
    ).rejects.toThrow('unsupported scheme "mysql"');
  });
});

describe('openStateStore on Postgres', () => {
  it.each(['postgresql+asyncpg:', 'postgresql:', 'postgres:'])(
    'opens and migrates the database for a %s URL',
    async (scheme) => {
      const store = await open({ serverDir: serverDir(), databaseUrl: schemaUrl(scheme) });
      const row = event(scheme);

      await store.insert('events', row);

      const { rows } = await admin.query(`select message from "${schema}".events where id = $1`, [
        row.id,
      ]);
      expect(rows).toEqual([{ message: scheme }]);
      expect(existsSync(join(dirs[dirs.length - 1], 'data'))).toBe(false);
    },
  );

  it('opens at most pool size plus overflow connections', async () => {
    const application = `dstack_pool_${randomBytes(3).toString('hex')}`;
    const store = await open({
      serverDir: serverDir(),
      databaseUrl: schemaUrl('postgresql:', `&application_name=${application}`),
      poolSize: 1,
      maxOverflow: 2,
    });
    let peak = 0;
    const hold = (name: string) =>
      store.withLock(name, async () => {
        const { rows } = await admin.query<{ count: string }>(
          'select count(*) from pg_stat_activity where application_name = $1',
          [application],
        );
        peak = Math.max(peak, Number(rows[0].count));
        await new Promise((resolve) => setTimeout(resolve, 100));
      });

    await Promise.all(['a', 'b', 'c', 'd', 'e', 'f'].map(hold));

    expect(peak).toBe(3);
  });

  it('names host, port and database of an unreachable server in one line', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise((resolve) => closed.close(resolve));

    const opening = openStateStore({
      serverDir: serverDir(),
      databaseUrl: `postgresql://dstack:hunter2@127.0.0.1:${port}/state`,
    });

    await expect(opening).rejects.toThrow(
      new RegExp(`^cannot connect to Postgres at 127\\.0\\.0\\.1:${port}/state: .*ECONNREFUSED`),
    );
    const message = await opening.catch((error: Error) => error.message);
    expect(message).not.toContain('hunter2');
    expect(message).not.toContain('\n');
  });

  it('names a database that does not exist', async () => {
    const url = new URL(postgresBase);
    url.pathname = '/dstack_missing_database';

    const opening = openStateStore({ serverDir: serverDir(), databaseUrl: url.toString() });

    await expect(opening).rejects.toThrow(
      /^cannot connect to Postgres at 127\.0\.0\.1:5432\/dstack_missing_database: .*does not exist/,
    );
  });

  describe('with a server that rejects the password', () => {
    let server: Server;
    let received: string[];

    // Speaks just enough of the Postgres protocol to ask for a password and refuse it.
    beforeAll(async () => {
      received = [];
      server = createServer((socket: Socket) => {
        let startup = true;
        socket.on('data', (data: Buffer) => {
          if (startup) {
            startup = false;
            const ask = Buffer.alloc(9);
            ask.write('R', 0);
            ask.writeInt32BE(8, 1);
            ask.writeInt32BE(3, 5);
            socket.write(ask);
            return;
          }

          received.push(data.subarray(5, data.length - 1).toString('utf8'));
          const fields = [
            'SFATAL',
            'VFATAL',
            'C28P01',
            'Mpassword authentication failed for user "dstack"',
          ];
          const body = Buffer.concat([
            ...fields.map((field) => Buffer.from(`${field}\0`, 'utf8')),
            Buffer.from([0]),
          ]);
          const header = Buffer.alloc(5);
          header.write('E', 0);
          header.writeInt32BE(body.length + 4, 1);
          socket.end(Buffer.concat([header, body]));
        });
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    });

    afterAll(async () => {
      await new Promise((resolve) => server.close(resolve));
    });

    it('says the password was refused without showing it', async () => {
      const { port } = server.address() as AddressInfo;

      const opening = openStateStore({
        serverDir: serverDir(),
        databaseUrl: `postgresql+asyncpg://dstack:hunter2@127.0.0.1:${port}/state`,
      });
      const message = await opening.then(
        () => 'opened',
        (error: Error) => error.message,
      );

      expect(received).toEqual(['hunter2']);
      expect(message).toBe(
        `cannot connect to Postgres at 127.0.0.1:${port}/state: ` +
          'password authentication failed for user "dstack" (28P01)',
      );
    });
  });
});
