import type { Logger } from '@dstack/core';
import type { PostgresPool } from 'kysely';

/** Options of `createPostgresStateStore`. */
export interface PostgresStateStoreOptions {
  /**
   * A ready `pg` Pool (or anything shaped like one). The store ends it on close. It needs at
   * least two connections: named locks and migrations hold one while work uses another. Give
   * a `pg` Pool an `error` listener (openPostgresPool does), or an idle failure ends the process.
   */
  pool: PostgresPool;
  logger?: Logger;
  /** How often a named lock held by another replica is tried again. */
  lockRetryMillis?: number;
}
