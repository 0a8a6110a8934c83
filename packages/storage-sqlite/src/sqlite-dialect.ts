import { createKeyedMutex, createMutex } from '@dstack/core';
import type { ColumnKind } from '@dstack/core';
import type { SqlDialect } from '@dstack/storage-sql';

const columnTypes: Record<ColumnKind, string> = {
  text: 'text',
  integer: 'integer',
  real: 'real',
  boolean: 'integer',
  json: 'text',
  time: 'integer',
};

/**
 * SQLite's part of the shared SQL store. One server process owns the file (the replica
 * lock), and better-sqlite3 behind Kysely runs one statement at a time on one connection,
 * so claims need no row locks and named locks stay in process.
 */
export function createSqliteDialect(): SqlDialect {
  const locks = createKeyedMutex();
  const migrations = createMutex();

  return {
    name: 'sqlite',
    columnType: (kind) => columnTypes[kind] as 'text',
    encodeBoolean: (value) => (value ? 1 : 0),
    encodeTime: (millis) => millis,
    lockClaimRows: (query) => query,
    withLock: (_db, name, work) => locks.run(name, work),

    uniqueViolation(error) {
      const { code, message } = error as { code?: unknown; message?: unknown };

      if (code !== 'SQLITE_CONSTRAINT_PRIMARYKEY' && code !== 'SQLITE_CONSTRAINT_UNIQUE') {
        return undefined;
      }

      // "UNIQUE constraint failed: users.name, users.token_hash"
      const failed = String(message).split(':').slice(1).join(':');
      return failed
        .split(',')
        .map((column) => column.trim().split('.').pop() ?? '')
        .filter((column) => column !== '');
    },

    withMigrationLock: (_db, work) => migrations.run(work),
    // TODO: a step is recorded after its commit; a crash in between reruns it on next start.
    beforeMigration: async () => undefined,
    migratorUsesTransactions: false,
    migrationSchema: async () => undefined,
  };
}
