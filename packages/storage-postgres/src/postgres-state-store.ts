import type { StateStore } from '@dstack/core';
import {
  createSqlStateStore,
  migrateToLatest as migrateSqlState,
} from '@dstack/storage-sql';
import type { AnyKysely, MigrateOptions } from '@dstack/storage-sql';
import { Kysely, PostgresDialect } from 'kysely';
import type { PostgresPool } from 'kysely';
import type { PostgresStateStoreOptions } from './config.js';
import { createPostgresDialect } from './postgres-dialect.js';

/** Kysely over a pool without taking the pool over: destroying it leaves the pool open. */
function borrow(pool: PostgresPool): AnyKysely {
  const kept: PostgresPool = {
    connect: () => pool.connect(),
    end: async () => undefined,
  };
  return new Kysely({ dialect: new PostgresDialect({ pool: kept }) });
}

/**
 * The StateStore on Postgres, shared by any number of server replicas. Run
 * `migrateToLatest` first; the store itself creates no tables.
 */
export function createPostgresStateStore(options: PostgresStateStoreOptions): StateStore {
  const db = new Kysely({ dialect: new PostgresDialect({ pool: options.pool }) });
  const dialect = createPostgresDialect({ lockRetryMillis: options.lockRetryMillis });
  return createSqlStateStore({ db, dialect, logger: options.logger });
}

/**
 * Brings the state schema in the pool's `search_path` up to date and returns the migrations
 * it applied. Replicas that start together take turns under the `migrations` advisory lock.
 * The pool stays open.
 */
export async function migrateToLatest(
  pool: PostgresPool,
  options?: MigrateOptions,
): Promise<string[]> {
  const db = borrow(pool);

  try {
    return await migrateSqlState(db, createPostgresDialect(), options);
  } finally {
    await db.destroy();
  }
}
