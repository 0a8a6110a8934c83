import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { OpenSqliteOptions } from './config.js';

/**
 * Opens (and creates) a SQLite file the way the server uses it: WAL journal, foreign keys
 * on, `synchronous=NORMAL` and a busy timeout, as the original sets on every connection.
 */
export function openSqliteDatabase(
  path: string,
  options: OpenSqliteOptions = {},
): Database.Database {
  if (path !== ':memory:') {
    mkdirSync(dirname(path), { recursive: true });
  }

  const db = new Database(path);

  try {
    db.pragma('journal_mode = WAL');
    db.pragma('foreign_keys = ON');
    db.pragma('synchronous = NORMAL');
    db.pragma(`busy_timeout = ${Math.round(options.busyTimeoutMillis ?? 30_000)}`);
  } catch (error) {
    db.close();
    throw error;
  }

  return db;
}
