import type { Logger } from '@dstack/core';
import { silentLogger } from '@dstack/core';
import pg from 'pg';

/** Options of `openPostgresPool`. */
export interface OpenPostgresPoolOptions {
  /** A `postgresql://` or `postgres://` URL. */
  connectionString: string;
  /** The most connections the pool opens. */
  max: number;
  /** How long opening one connection may take before it fails. */
  connectTimeoutMillis?: number;
  logger?: Logger;
}

/**
 * Opens a `pg` pool for the state store. It connects lazily; errors of idle connections
 * (a restarted database, say) are logged instead of crashing the process.
 */
export function openPostgresPool(options: OpenPostgresPoolOptions): pg.Pool {
  const log = options.logger ?? silentLogger;
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.max,
    connectionTimeoutMillis: options.connectTimeoutMillis ?? 10_000,
    application_name: 'dstack-server',
  });

  pool.on('error', (error) => {
    log.warn({ code: (error as { code?: string }).code }, 'idle postgres connection failed');
  });

  return pool;
}
