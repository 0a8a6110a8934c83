import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger, tableColumns } from '@dstack/core';
import type { Logger, StateStore, TableName, TableRows } from '@dstack/core';
import {
  createPostgresStateStore,
  migrateToLatest as migratePostgres,
} from '@dstack/storage-postgres';
import {
  acquireReplicaLock,
  createSqliteStateStore,
  migrateToLatest as migrateSqlite,
  openSqliteDatabase,
} from '@dstack/storage-sqlite';
import { connectPostgres, isPostgresUrl, redactDatabaseUrl } from '../compose/state-store.js';
import { answerArguments, commandServerDir, processIo } from './command-io.js';
import type { CommandIo } from './command-io.js';

export type { CommandIo } from './command-io.js';

/** How far the copy of one table has come. */
export interface CopyProgress {
  table: TableName;
  copied: number;
  total: number;
}

/** Options of `copyState`. */
export interface CopyStateOptions {
  /** The SQLite file of the state to copy; it is read, never written. */
  from: string;
  /** The Postgres URL to copy into; its state tables must be empty. */
  to: string;
  logger?: Logger;
  /** Called after every batch of every table. */
  progress?: (progress: CopyProgress) => void;
  /** Rows per read and insert. */
  batchSize?: number;
}

/** What `copyState` copied: rows per table, equal in source and target. */
export interface CopyStateResult {
  rows: Record<TableName, number>;
}

const tables = Object.keys(tableColumns) as TableName[];

/**
 * Opens a private copy of the source file (and its WAL), so that neither migrating an older
 * state nor opening it leaves a trace next to the original.
 */
async function openSourceCopy(from: string, logger: Logger) {
  if (!existsSync(from)) {
    throw new Error(`the source state ${from} does not exist`);
  }

  const directory = mkdtempSync(join(tmpdir(), 'dstack-copy-state-'));
  const copy = join(directory, 'sqlite.db');

  try {
    copyFileSync(from, copy);

    if (existsSync(`${from}-wal`)) {
      copyFileSync(`${from}-wal`, `${copy}-wal`);
    }

    const db = openSqliteDatabase(copy);
    const known = db
      .prepare("select 1 from sqlite_master where type = 'table' and name = 'kysely_migration'")
      .get();

    if (!known) {
      db.close();
      throw new Error(`${from} is not a state written by this server (no migration table)`);
    }

    await migrateSqlite(db, { logger });
    const store = createSqliteStateStore({ db });
    return {
      store,
      async close() {
        await store.close();
        rmSync(directory, { recursive: true, force: true });
      },
    };
  } catch (error) {
    rmSync(directory, { recursive: true, force: true });
    throw error;
  }
}

type Pool = Awaited<ReturnType<typeof connectPostgres>>['pool'];

/** Tables of the state that already hold rows, looked at before anything is migrated. */
async function rowsBeforeMigrating(pool: Pool): Promise<string[]> {
  const { rows } = await pool.query<{ name: string }>(
    `select table_name as name from information_schema.tables
     where table_schema = current_schema() and table_name = any($1)`,
    [tables],
  );
  const occupied: string[] = [];

  for (const table of tables.filter((name) => rows.some((row) => row.name === name))) {
    const result = await pool.query<{ count: number }>(
      `select count(*)::int as count from "${table}"`,
    );
    const count = result.rows[0]?.count ?? 0;

    if (count > 0) {
      occupied.push(`${table} (${count})`);
    }
  }

  return occupied;
}

async function rowsInTarget(store: StateStore): Promise<string[]> {
  const counts = await Promise.all(
    tables.map(async (table) => ({ table, count: await store.count(table) })),
  );
  return counts.filter(({ count }) => count > 0).map(({ table, count }) => `${table} (${count})`);
}

/**
 * Copies every table of a SQLite state into an empty Postgres database, migrating the
 * target first. The copy is one transaction: it lands whole, with row counts checked for
 * every table, or not at all. A server must not be running on the source meanwhile.
 */
export async function copyState(options: CopyStateOptions): Promise<CopyStateResult> {
  const log = options.logger ?? silentLogger;
  const batchSize = options.batchSize ?? 500;
  const sourceLock = acquireReplicaLock(options.from);
  let source: Awaited<ReturnType<typeof openSourceCopy>> | undefined;
  let target: StateStore | undefined;

  try {
    source = await openSourceCopy(options.from, log);
    const connection = await connectPostgres({ databaseUrl: options.to, max: 4, logger: log });
    target = createPostgresStateStore({ pool: connection.pool, logger: log });
    const notEmpty = (occupied: string[]): Error =>
      new Error(`the target database at ${connection.target} is not empty: ${occupied.join(', ')}`);
    const before = await rowsBeforeMigrating(connection.pool);

    if (before.length > 0) {
      throw notEmpty(before);
    }

    await migratePostgres(connection.pool, { logger: log });
    const after = await rowsInTarget(target);

    if (after.length > 0) {
      throw notEmpty(after);
    }

    const from = source.store;
    const rows = {} as Record<TableName, number>;

    await target.transaction(async (tx) => {
      for (const table of tables) {
        const total = await from.count(table);
        let copied = 0;
        let lastId: string | undefined;
        options.progress?.({ table, copied, total });

        for (;;) {
          const batch: TableRows[TableName][] = await from.find(table, {
            where: lastId === undefined ? {} : { id: { gt: lastId } },
            orderBy: [['id', 'asc']],
            limit: batchSize,
          });

          if (batch.length === 0) {
            break;
          }

          await tx.insert(table, batch as never);
          copied += batch.length;
          lastId = batch[batch.length - 1].id;
          options.progress?.({ table, copied, total });
        }

        const landed = await tx.count(table);

        if (landed !== total || copied !== total) {
          throw new Error(`${table}: the source has ${total} rows but ${landed} were copied`);
        }

        rows[table] = total;
        log.info({ table, rows: total }, 'table copied');
      }
    });

    return { rows };
  } finally {
    await target?.close();
    await source?.close();
    sourceLock.release();
  }
}

const usage = `Usage: dstack-server copy-state [--from <sqlite.db>] [--to <postgres url>]

Copies the server state from a SQLite file into an empty Postgres database.
  --from  the SQLite state (default: $DSTACK_SERVER_DIR/data/sqlite.db,
          or ~/.dstack/server/data/sqlite.db)
  --to    a postgresql:// URL (default: $DSTACK_DATABASE_URL)
Stop the server that uses the SQLite state first.`;

function parseArguments(argv: readonly string[]): Record<string, string> | string {
  const args = argv[0] === 'copy-state' ? argv.slice(1) : argv;
  const values: Record<string, string> = {};

  for (let index = 0; index < args.length; index += 1) {
    const arg = args[index];

    if (arg === '--help' || arg === '-h') {
      return 'help';
    }

    const [flag, inline] = arg.split(/=(.*)/s, 2);

    if (flag !== '--from' && flag !== '--to') {
      return `unknown argument ${arg}`;
    }

    const value = inline ?? args[(index += 1)];

    if (value === undefined || value === '') {
      return `${flag} needs a value`;
    }

    values[flag.slice(2)] = value;
  }

  return values;
}

/**
 * The `dstack-server copy-state --from <sqlite.db> --to <postgres url>` subcommand: `argv`
 * holds the arguments after the subcommand (a leading `copy-state` is skipped). Resolves
 * to the exit code: 0 copied, 1 failed, 2 bad arguments.
 */
export async function runCopyStateCommand(
  argv: string[],
  io: CommandIo = processIo,
): Promise<number> {
  const parsed = parseArguments(argv);

  if (typeof parsed === 'string') {
    return answerArguments('copy-state', parsed, usage, io);
  }

  const serverDir = commandServerDir(io.env);
  const from = parsed.from ?? join(serverDir, 'data', 'sqlite.db');
  const to = parsed.to ?? io.env.DSTACK_DATABASE_URL;

  if (!to || !isPostgresUrl(to)) {
    io.stderr(`copy-state: --to needs a postgresql:// URL\n\n${usage}`);
    return 2;
  }

  io.stdout(`copying ${from} to ${redactDatabaseUrl(to)}`);

  try {
    const result = await copyState({
      from,
      to,
      progress: ({ table, copied, total }) => {
        if (copied === total || (copied > 0 && copied % 5000 === 0)) {
          io.stdout(`  ${table}: ${copied}/${total}`);
        }
      },
    });
    const total = Object.values(result.rows).reduce((sum, count) => sum + count, 0);
    io.stdout(`copied ${total} rows in ${tables.length} tables; row counts match`);
    return 0;
  } catch (error) {
    io.stderr(`copy-state failed: ${(error as Error).message}`);
    return 1;
  }
}
