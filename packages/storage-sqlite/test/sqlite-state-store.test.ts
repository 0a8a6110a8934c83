import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runStateStoreContract } from '@dstack/core/testing';
import {
  createSqliteStateStore,
  migrateToLatest,
  openSqliteDatabase,
} from '@dstack/storage-sqlite';
import { afterAll } from 'vitest';

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
