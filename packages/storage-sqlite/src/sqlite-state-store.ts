import type { StateStore } from '@dstack/core';
import {
  createSqlStateStore,
  migrateToLatest as migrateSqlState,
} from '@dstack/storage-sql';
import type { AnyKysely, MigrateOptions } from '@dstack/storage-sql';
import { Kysely, SqliteDialect } from 'kysely';
import type { SqliteClient, SqliteStateStoreOptions } from './config.js';
import { createSqliteDialect } from './sqlite-dialect.js';

function isKysely(client: SqliteClient): client is AnyKysely {
  return typeof (client as AnyKysely).selectFrom === 'function';
}

function toKysely(client: SqliteClient): AnyKysely {
  if (isKysely(client)) {
    return client;
  }

  return new Kysely({ dialect: new SqliteDialect({ database: client }) });
}

/**
 * The StateStore on SQLite, for one server process. Run `migrateToLatest` on the same
 * database first; the store itself creates no tables.
 */
export function createSqliteStateStore(options: SqliteStateStoreOptions): StateStore {
  const db = toKysely(options.db);
  const dialect = createSqliteDialect();
  const store = createSqlStateStore({ db, dialect, logger: options.logger });
  const close = store.close.bind(store);

  store.close = async () => {
    try {
      await close();
    } finally {
      options.replicaLock?.release();
    }
  };

  return store;
}

/**
 * Brings a SQLite state schema up to date and returns the migrations it applied. The
 * connection stays open.
 */
export function migrateToLatest(client: SqliteClient, options?: MigrateOptions): Promise<string[]> {
  return migrateSqlState(toKysely(client), createSqliteDialect(), options);
}
