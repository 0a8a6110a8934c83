import type { Logger } from '@dstack/core';
import type { Kysely, SqliteDatabase } from 'kysely';
import type { ReplicaLock } from './replica-lock.js';

/** A ready SQLite connection: a Kysely instance or a better-sqlite3 database. */
// The state tables are queried untyped, so any Kysely database type will do.
export type SqliteClient = Kysely<any> | SqliteDatabase;

/** Options of `createSqliteStateStore`. */
export interface SqliteStateStoreOptions {
  /** The connection; the store closes it on close. */
  db: SqliteClient;
  /** A replica lock the store releases after it closed the connection. */
  replicaLock?: ReplicaLock;
  logger?: Logger;
}

/** Options of `openSqliteDatabase`. */
export interface OpenSqliteOptions {
  /** How long a statement waits for a lock held by another connection. */
  busyTimeoutMillis?: number;
}
