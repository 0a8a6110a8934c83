import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tableColumns } from '@dstack/core';
import { stateMigrations, toSnakeCase } from '@dstack/storage-sql';
import type { StateMigration } from '@dstack/storage-sql';
import {
  createSqliteStateStore,
  migrateToLatest,
  openSqliteDatabase,
} from '@dstack/storage-sqlite';
import type Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

let root: string;
let db: Database.Database;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'dstack-sqlite-migrations-'));
  db = openSqliteDatabase(join(root, 'data', 'sqlite.db'));
});

afterEach(() => {
  if (db.open) {
    db.close();
  }

  rmSync(root, { recursive: true, force: true });
});

function tableNames(): string[] {
  return db
    .prepare("select name from sqlite_master where type = 'table' and name not like 'kysely%'")
    .all()
    .map((row) => (row as { name: string }).name)
    .filter((name) => !name.startsWith('sqlite_'))
    .sort();
}

describe('sqlite state migrations', () => {
  it('opens the file with WAL, foreign keys, synchronous NORMAL and a busy timeout', () => {
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('foreign_keys', { simple: true })).toBe(1);
    expect(db.pragma('synchronous', { simple: true })).toBe(1);
    expect(db.pragma('busy_timeout', { simple: true })).toBe(30000);
  });

  it('creates a column for every record column, once', async () => {
    expect(await migrateToLatest(db)).toEqual(Object.keys(stateMigrations));
    expect(await migrateToLatest(db)).toEqual([]);

    expect(tableNames()).toEqual(Object.keys(tableColumns).sort());

    for (const [table, columns] of Object.entries(tableColumns)) {
      const actual = db
        .prepare(`select name from pragma_table_info('${table}')`)
        .all()
        .map((row) => (row as { name: string }).name)
        .sort();
      expect(actual, table).toEqual(Object.keys(columns).map(toSnakeCase).sort());
    }
  });

  it('creates the unique indexes and the claim indexes', async () => {
    await migrateToLatest(db);

    const indexes = db
      .prepare("select name from sqlite_master where type = 'index' and name not like 'sqlite_%'")
      .all()
      .map((row) => (row as { name: string }).name);

    expect(indexes).toEqual(
      expect.arrayContaining([
        'uq_users_name',
        'uq_users_token_hash',
        'uq_projects_name',
        'uq_members_project_id_user_id',
        'uq_secrets_project_id_name',
        'ix_runs_status_last_processed_at',
        'ix_jobs_status_last_processed_at',
        'ix_instances_status_last_processed_at',
        'ix_fleets_deleted_last_processed_at',
      ]),
    );
  });

  it('leaves the schema as it was when a migration fails', async () => {
    await migrateToLatest(db);
    const before = tableNames();
    const broken: Record<string, StateMigration> = {
      ...stateMigrations,
      '0999_broken': {
        async up(kysely) {
          await kysely.schema.createTable('half_done').addColumn('id', 'text').execute();
          await kysely.schema.alterTable('runs').addColumn('extra', 'text').execute();
          throw new Error('step failed');
        },
      },
    };

    await expect(migrateToLatest(db, { migrations: broken })).rejects.toThrow('step failed');

    expect(tableNames()).toEqual(before);
    const runColumns = db.prepare("select name from pragma_table_info('runs')").all();
    expect(runColumns.map((row) => (row as { name: string }).name)).not.toContain('extra');
    expect(await migrateToLatest(db)).toEqual([]);
  });

  it('keeps rows in the file across reopening', async () => {
    const path = db.name;
    await migrateToLatest(db);
    const store = createSqliteStateStore({ db });
    await store.insert('events', {
      id: 'e1',
      message: 'hello',
      recordedAt: 1_700_000_000_000,
      actorUserId: null,
      targets: [{ type: 'run', name: 'r' }],
    });
    await store.close();
    expect(db.open).toBe(false);

    db = openSqliteDatabase(path);
    await migrateToLatest(db);
    const reopened = createSqliteStateStore({ db });
    expect(await reopened.get('events', 'e1')).toEqual({
      id: 'e1',
      message: 'hello',
      recordedAt: 1_700_000_000_000,
      actorUserId: null,
      targets: [{ type: 'run', name: 'r' }],
    });
    await reopened.close();
  });
});
