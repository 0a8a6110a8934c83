import { createKeyedMutex } from '@dstack/core';
import type { ColumnKind } from '@dstack/core';
import type { SqlDialect } from '@dstack/storage-sql';
import { sql } from 'kysely';
import type { ColumnDataType, Expression } from 'kysely';
import { advisoryLockId } from './advisory-lock-id.js';

const columnTypes: Record<ColumnKind, ColumnDataType | Expression<unknown>> = {
  // Byte order, as SQLite and the in-memory store compare, whatever the database's locale.
  text: sql`text collate "C"`,
  integer: 'bigint',
  real: 'double precision',
  boolean: 'boolean',
  json: 'text',
  time: 'timestamptz',
};

function sleep(millis: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, millis));
}

/** Options of the Postgres dialect. */
export interface PostgresDialectOptions {
  /** How often a named lock held elsewhere is tried again. */
  lockRetryMillis?: number;
}

/**
 * Postgres's part of the shared SQL store: claims lock the rows they pick with
 * `FOR NO KEY UPDATE SKIP LOCKED`, named locks and migrations use advisory locks, and each
 * migration step gives up on a table lock after 15 s rather than block live traffic.
 */
export function createPostgresDialect(options: PostgresDialectOptions = {}): SqlDialect {
  const retryMillis = options.lockRetryMillis ?? 100;
  // Holders in this process queue here, so only one of them polls the database.
  const local = createKeyedMutex();

  return {
    name: 'postgres',
    columnType: (kind) => columnTypes[kind],
    encodeBoolean: (value) => value,
    encodeTime: (millis) => new Date(millis),
    lockClaimRows: (query) => query.forNoKeyUpdate().skipLocked(),

    withLock: (db, name, work) =>
      local.run(name, async () => {
        const id = advisoryLockId(name);

        for (;;) {
          // A session lock lives on one connection; waiting does not hold a connection.
          const outcome = await db.connection().execute(async (connection) => {
            const { rows } = await sql<{ locked: boolean }>`
              select pg_try_advisory_lock(${id}::bigint) as locked
            `.execute(connection);

            if (!rows[0]?.locked) {
              return undefined;
            }

            try {
              return { value: await work() };
            } finally {
              await sql`select pg_advisory_unlock(${id}::bigint)`.execute(connection);
            }
          });

          if (outcome) {
            return outcome.value;
          }

          await sleep(retryMillis * (0.8 + Math.random() * 0.4));
        }
      }),

    uniqueViolation(error) {
      const { code, detail, constraint } = error as {
        code?: unknown;
        detail?: unknown;
        constraint?: unknown;
      };

      if (code !== '23505') {
        return undefined;
      }

      // "Key (project_id, name)=(…) already exists."
      const columns = /^Key \(([^)]*)\)=/.exec(String(detail ?? ''))?.[1];

      if (columns) {
        return columns.split(',').map((column) => column.trim().replace(/^"|"$/g, ''));
      }

      return constraint ? [String(constraint)] : [];
    },

    withMigrationLock: (db, work) =>
      db.connection().execute(async (connection) => {
        const id = advisoryLockId('migrations');
        await sql`select pg_advisory_lock(${id}::bigint)`.execute(connection);

        try {
          return await work();
        } finally {
          await sql`select pg_advisory_unlock(${id}::bigint)`.execute(connection);
        }
      }),

    async beforeMigration(db) {
      await sql`set local lock_timeout = '15s'`.execute(db);
    },

    migratorUsesTransactions: true,

    async migrationSchema(db) {
      const { rows } = await sql<{ schema: string }>`select current_schema() as schema`.execute(db);
      return rows[0]?.schema;
    },
  };
}
