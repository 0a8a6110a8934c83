import { join } from 'node:path';
import { silentLogger } from '@dstack/core';
import type { Logger, StateStore } from '@dstack/core';
import {
  createPostgresStateStore,
  migrateToLatest as migratePostgres,
  openPostgresPool,
} from '@dstack/storage-postgres';
import {
  acquireReplicaLock,
  createSqliteStateStore,
  migrateToLatest as migrateSqlite,
  openSqliteDatabase,
} from '@dstack/storage-sqlite';

/** Options of `openStateStore`; the bin fills them from the environment. */
export interface OpenStateStoreOptions {
  /** The server directory (`~/.dstack/server`); SQLite lives at `<serverDir>/data/sqlite.db`. */
  serverDir: string;
  /** `DSTACK_DATABASE_URL`: a Postgres URL picks Postgres; unset or empty picks SQLite. */
  databaseUrl?: string;
  /** `DSTACK_DB_POOL_SIZE` (default 20). */
  poolSize?: number;
  /** `DSTACK_DB_MAX_OVERFLOW` (default 20); the pool opens up to size + overflow. */
  maxOverflow?: number;
  logger?: Logger;
  /**
   * Takes the SQLite replica lock (default true). A short command that works beside a running
   * server (re-encryption) passes false; SQLite's own locking keeps its writes safe.
   */
  replicaLock?: boolean;
}

const postgresSchemes = ['postgresql+asyncpg:', 'postgresql:', 'postgres:'];

/** Where a database URL points, for messages: `host:port/database`, never credentials. */
function describeTarget(url: URL): string {
  const host = url.hostname || 'localhost';
  const port = url.port || '5432';
  const database = decodeURIComponent(url.pathname.replace(/^\//, '')) || '(default)';
  return `${host}:${port}/${database}`;
}

/**
 * A database URL with its password (in the user part or a `password` parameter) replaced
 * by `***`, safe to log or show.
 */
export function redactDatabaseUrl(databaseUrl: string): string {
  try {
    const url = new URL(databaseUrl);

    if (url.password) {
      url.password = '***';
    }

    if (url.searchParams.has('password')) {
      url.searchParams.set('password', '***');
    }

    return url.toString().replace('%2A%2A%2A', '***');
  } catch {
    return databaseUrl.replace(/\/\/([^:/@]*):[^@]*@/, '//$1:***@');
  }
}

/** Whether `DSTACK_DATABASE_URL` names a Postgres database. */
export function isPostgresUrl(databaseUrl: string | undefined): boolean {
  const scheme = databaseUrl?.trim().toLowerCase().split('//')[0];
  return scheme !== undefined && postgresSchemes.includes(scheme);
}

/** The connection pool size: DSTACK_DB_POOL_SIZE plus DSTACK_DB_MAX_OVERFLOW, 20 + 20. */
export function postgresPoolMax(poolSize?: number, maxOverflow?: number): number {
  return Math.max(2, (poolSize ?? 20) + (maxOverflow ?? 20));
}

/** Reads the state store's variables; the bin passes `process.env`. */
export function readStateStoreEnv(
  env: Record<string, string | undefined>,
): Pick<OpenStateStoreOptions, 'databaseUrl' | 'poolSize' | 'maxOverflow'> {
  const integer = (name: string): number | undefined => {
    const value = env[name]?.trim();

    if (!value) {
      return undefined;
    }

    if (!/^\d+$/.test(value)) {
      throw new Error(`${name} must be a whole number, got "${value}"`);
    }

    return Number(value);
  };

  return {
    databaseUrl: env.DSTACK_DATABASE_URL?.trim() || undefined,
    poolSize: integer('DSTACK_DB_POOL_SIZE'),
    maxOverflow: integer('DSTACK_DB_MAX_OVERFLOW'),
  };
}

function reasonOf(error: unknown, password: string): string {
  const { code, message } = error as { code?: unknown; message?: unknown };
  let reason = String(message ?? error).split('\n')[0];

  if (password) {
    reason = reason.split(password).join('***');
  }

  return typeof code === 'string' && !reason.includes(code) ? `${reason} (${code})` : reason;
}

/** Options of `connectPostgres`. */
export interface ConnectPostgresOptions {
  /** A `postgresql+asyncpg://`, `postgresql://` or `postgres://` URL. */
  databaseUrl: string;
  /** The most connections the pool opens. */
  max: number;
  logger?: Logger;
}

/** An open, checked Postgres pool and where it points (`host:port/database`). */
export interface PostgresConnection {
  pool: ReturnType<typeof openPostgresPool>;
  target: string;
  /** Turns a driver error into one line without the password. */
  describeError(error: unknown): string;
}

/**
 * Opens a pool on a Postgres URL and checks that it connects. A failure throws an Error
 * whose message is one line naming host, port and database, never the password.
 */
export async function connectPostgres(
  options: ConnectPostgresOptions,
): Promise<PostgresConnection> {
  const connectionString = options.databaseUrl.replace(/^postgresql\+asyncpg:/i, 'postgresql:');
  let url: URL;

  try {
    url = new URL(connectionString);
  } catch {
    throw new Error('the database URL is not a valid URL');
  }

  const target = describeTarget(url);
  const password = decodeURIComponent(url.password);
  const pool = openPostgresPool({ connectionString, max: options.max, logger: options.logger });
  const describeError = (error: unknown): string => reasonOf(error, password);

  try {
    await pool.query('select 1');
  } catch (error) {
    await pool.end();
    throw new Error(`cannot connect to Postgres at ${target}: ${describeError(error)}`, {
      cause: error,
    });
  }

  return { pool, target, describeError };
}

async function openPostgres(
  options: OpenStateStoreOptions,
  databaseUrl: string,
): Promise<StateStore> {
  const log = options.logger ?? silentLogger;
  const { pool, target, describeError } = await connectPostgres({
    databaseUrl,
    max: postgresPoolMax(options.poolSize, options.maxOverflow),
    logger: log,
  });

  try {
    const applied = await migratePostgres(pool, { logger: log });
    log.info({ database: target, applied: applied.length }, 'postgres state ready');
  } catch (error) {
    await pool.end();
    throw new Error(`migrating Postgres at ${target} failed: ${describeError(error)}`, {
      cause: error,
    });
  }

  return createPostgresStateStore({ pool, logger: log });
}

function sqlitePath(options: OpenStateStoreOptions): string {
  const url = options.databaseUrl?.trim();

  // The original's own form: sqlite+aiosqlite:////home/me/.dstack/server/data/sqlite.db
  const match = url ? /^sqlite(\+[a-z]+)?:\/\/\/(.+)$/i.exec(url) : null;
  return match ? match[2] : join(options.serverDir, 'data', 'sqlite.db');
}

async function openSqlite(options: OpenStateStoreOptions): Promise<StateStore> {
  const path = sqlitePath(options);
  const log = options.logger ?? silentLogger;
  const replicaLock = options.replicaLock === false ? undefined : acquireReplicaLock(path);
  let db: ReturnType<typeof openSqliteDatabase> | undefined;

  try {
    db = openSqliteDatabase(path);
    const applied = await migrateSqlite(db, { logger: log });
    log.info({ path, applied: applied.length }, 'sqlite state ready');
    return createSqliteStateStore({ db, replicaLock, logger: log });
  } catch (error) {
    db?.close();
    replicaLock?.release();
    throw error;
  }
}

/**
 * Opens the server's StateStore and brings its schema up to date: Postgres when
 * `databaseUrl` is a `postgresql+asyncpg://`, `postgresql://` or `postgres://` URL, else
 * SQLite under `serverDir` (one server process per directory). Connection failures throw an
 * Error with a one-line message naming host, port and database, never the password.
 */
export async function openStateStore(options: OpenStateStoreOptions): Promise<StateStore> {
  const databaseUrl = options.databaseUrl?.trim();

  if (databaseUrl && isPostgresUrl(databaseUrl)) {
    return openPostgres(options, databaseUrl);
  }

  if (databaseUrl && !/^sqlite(\+[a-z]+)?:/i.test(databaseUrl)) {
    const scheme = databaseUrl.split(':')[0];
    throw new Error(
      `DSTACK_DATABASE_URL has an unsupported scheme "${scheme}": ` +
        'use postgresql:// or leave it unset for SQLite',
    );
  }

  return openSqlite(options);
}
