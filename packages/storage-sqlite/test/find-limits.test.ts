import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { UserRecord } from '@dstack/core';
import {
  createSqliteStateStore,
  migrateToLatest,
  openSqliteDatabase,
} from '@dstack/storage-sqlite';
import { afterAll, describe, expect, it } from 'vitest';

const root = mkdtempSync(join(tmpdir(), 'dstack-sqlite-limits-'));

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

function user(name: string, createdAt: number): UserRecord {
  const id = randomUUID();
  return {
    id, name, createdAt, token: `enc:identity:noname:${id}`, tokenHash: `hash-${id}`,
    globalRole: 'user', email: null, active: true, deleted: false, originalName: null,
    sshPublicKey: null, sshPrivateKey: null,
  };
}

// A client may send any integer limit (instances/list bounds none): SQLite takes a LIMIT
// past 2^63 as a float and refuses it, and reads a negative one as "no limit".
describe('find limits beyond what the database takes', () => {
  it('returns every row for a huge limit, and none for a negative one', async () => {
    const db = openSqliteDatabase(join(root, 'state', 'sqlite.db'));
    await migrateToLatest(db);
    const store = createSqliteStateStore({ db });

    try {
      await store.insert('users', [user('first', 1), user('second', 2)]);
      const all = await store.find('users', { orderBy: [['createdAt', 'asc']], limit: 1e20 });
      expect(all.map((row) => row.name)).toEqual(['first', 'second']);
      expect(await store.find('users', { limit: -5 })).toEqual([]);
    } finally {
      await store.close();
    }
  });
});
