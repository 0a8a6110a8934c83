import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runStateStoreContract } from '@dstack/core/testing';
import {
  createSqliteStateStore,
  migrateToLatest,
  openSqliteDatabase,
} from '@dstack/storage-sqlite';
import { Kysely, SqliteDialect } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';

const root = mkdtempSync(join(tmpdir(), 'dstack-sqlite-contract-'));
let opened = 0;

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

runStateStoreContract('sqlite', async () => {
  opened += 1;
  const db = openSqliteDatabase(join(root, `state-${opened}`, 'sqlite.db'));
  await migrateToLatest(db);
  return createSqliteStateStore({ db });
});

describe('a store over a ready Kysely instance', () => {
  it('uses a Kysely instance it is given and closes it with the store', async () => {
    const db = openSqliteDatabase(join(root, 'kysely', 'sqlite.db'));
    const kysely = new Kysely<unknown>({ dialect: new SqliteDialect({ database: db }) });
    await migrateToLatest(kysely);
    const store = createSqliteStateStore({ db: kysely });

    await store.insert('events', {
      id: 'k1',
      message: 'through kysely',
      recordedAt: 7,
      actorUserId: null,
      targets: null,
    });

    const raw = db.prepare('select message, recorded_at from events').all();
    expect(raw).toEqual([{ message: 'through kysely', recorded_at: 7 }]);
    await store.close();
    expect(db.open).toBe(false);
  });
});
