import { tableColumns } from '@dstack/core';
import { migrateToLatest } from '@dstack/storage-postgres';
import { stateMigrations, toSnakeCase } from '@dstack/storage-sql';
import type { StateMigration } from '@dstack/storage-sql';
import { sql } from 'kysely';
import type pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createTestSchema } from './test-schema.js';
import type { TestSchema } from './test-schema.js';

// SHA-256 of "migrations" modulo 2^63, computed independently with Python's hashlib.
const migrationsLockId = '8499576275731843811';

let schema: TestSchema;
const pools: pg.Pool[] = [];

beforeEach(async () => {
  schema = await createTestSchema('migrations');
});

afterEach(async () => {
  await Promise.all(pools.splice(0).map((pool) => pool.end()));
  await schema.drop();
});

function pool(): pg.Pool {
  const created = schema.pool(3);
  pools.push(created);
  return created;
}

async function tablesInSchema(): Promise<string[]> {
  const { rows } = await schema.admin.query<{ table_name: string }>(
    'select table_name from information_schema.tables where table_schema = $1 order by 1',
    [schema.name],
  );
  return rows.map((row) => row.table_name);
}

describe('postgres state migrations', () => {
  it('creates every record column with the types of its kind', async () => {
    expect(await migrateToLatest(pool())).toEqual(Object.keys(stateMigrations));

    const { rows } = await schema.admin.query<{
      table_name: string;
      column_name: string;
      data_type: string;
    }>(
      `select table_name, column_name, data_type from information_schema.columns
       where table_schema = $1 and table_name not like 'kysely%'`,
      [schema.name],
    );
    const types: Record<string, string> = {
      text: 'text',
      integer: 'bigint',
      real: 'double precision',
      boolean: 'boolean',
      json: 'text',
      time: 'timestamp with time zone',
    };
    const expected = Object.entries(tableColumns).flatMap(([table, columns]) =>
      Object.entries(columns).map(
        ([column, kind]) => `${table}.${toSnakeCase(column)}:${types[kind]}`,
      ),
    );
    const actual = rows.map((row) => `${row.table_name}.${row.column_name}:${row.data_type}`);

    expect(actual.sort()).toEqual(expected.sort());
  });

  it('ends with one schema version when three replicas migrate at the same moment', async () => {
    const results = await Promise.allSettled([
      migrateToLatest(pool()),
      migrateToLatest(pool()),
      migrateToLatest(pool()),
    ]);

    expect(results.map((result) => result.status)).toEqual([
      'fulfilled',
      'fulfilled',
      'fulfilled',
    ]);
    const applied = results.map((result) => (result as PromiseFulfilledResult<string[]>).value);
    expect(applied.flat()).toEqual(Object.keys(stateMigrations));

    const { rows } = await schema.admin.query<{ name: string }>(
      'select name from kysely_migration order by name',
    );
    expect(rows.map((row) => row.name)).toEqual(Object.keys(stateMigrations));
    expect(await tablesInSchema()).toEqual(
      [...Object.keys(tableColumns), 'kysely_migration', 'kysely_migration_lock'].sort(),
    );
  });

  it('leaves the schema as it was when a migration fails', async () => {
    await migrateToLatest(pool());
    const before = await tablesInSchema();
    const broken: Record<string, StateMigration> = {
      ...stateMigrations,
      '0998_fine': {
        async up(db) {
          await db.schema.createTable('fine_table').addColumn('id', 'text').execute();
        },
      },
      '0999_broken': {
        async up(db) {
          await db.schema.createTable('half_done').addColumn('id', 'text').execute();
          await db.schema.alterTable('runs').addColumn('extra', 'text').execute();
          await sql`select 1 / 0`.execute(db);
        },
      },
    };

    await expect(migrateToLatest(pool(), { migrations: broken })).rejects.toThrow(
      'division by zero',
    );

    // The step before the broken one stays applied; the broken one left nothing behind.
    expect(await tablesInSchema()).toEqual([...before, 'fine_table'].sort());
    const { rows } = await schema.admin.query(
      `select 1 from information_schema.columns
       where table_schema = $1 and table_name = 'runs' and column_name = 'extra'`,
      [schema.name],
    );
    expect(rows).toEqual([]);
    const versions = await schema.admin.query<{ name: string }>(
      'select name from kysely_migration order by name',
    );
    expect(versions.rows.map((row) => row.name)).toEqual([
      ...Object.keys(stateMigrations),
      '0998_fine',
    ]);
  });

  it('runs each step under the migrations lock with a 15 s lock timeout', async () => {
    const seen: { timeout: string; transaction: string; locks: string }[] = [];
    const probe: StateMigration = {
      async up(db) {
        // A bigint advisory lock shows in pg_locks split into classid (high) and objid (low).
        const { rows } = await sql<{ timeout: string; transaction: string; locks: string }>`
          select current_setting('lock_timeout') as timeout,
            txid_current()::text as transaction,
            (select count(*) from pg_locks
              where locktype = 'advisory' and objsubid = 1 and granted
                and ((classid::bigint << 32) | objid::bigint) = ${migrationsLockId}::bigint
            )::text as locks
        `.execute(db);
        seen.push(rows[0]);
      },
    };

    await migrateToLatest(pool(), { migrations: { '0001_a': probe, '0002_b': probe } });

    expect(seen.map((item) => item.timeout)).toEqual(['15s', '15s']);
    expect(seen.map((item) => item.locks)).toEqual(['1', '1']);
    expect(seen[0].transaction).not.toBe(seen[1].transaction);
    const { rows } = await schema.admin.query<{ timeout: string }>(
      "select current_setting('lock_timeout') as timeout",
    );
    expect(rows[0].timeout).toBe('0');
  });
});
