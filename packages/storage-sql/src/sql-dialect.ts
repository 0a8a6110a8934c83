import type { ColumnKind } from '@dstack/core';
import type { ColumnDataType, Expression, Kysely, SelectQueryBuilder, Transaction } from 'kysely';

/** Any Kysely instance over the state tables; the store builds its queries untyped. */
export type AnyKysely = Kysely<any>;
export type AnySelect = SelectQueryBuilder<any, any, any>;
export type AnyTransaction = Transaction<any>;

/**
 * What a SQL dialect package tells the shared store: how it stores each column kind, how
 * claims lock rows, how named locks and migrations are serialised between replicas.
 */
export interface SqlDialect {
  /** Shown in errors and logs, e.g. `sqlite` or `postgres`. */
  readonly name: string;

  /** The column type a migration creates for each kind. */
  columnType(kind: ColumnKind): ColumnDataType | Expression<unknown>;

  /** How a boolean is written: SQLite keeps 0/1, Postgres a native boolean. */
  encodeBoolean(value: boolean): unknown;

  /** How an epoch-milliseconds time is written. Reads accept numbers, strings and Dates. */
  encodeTime(millis: number): unknown;

  /** Adds the row locking a claim needs so that concurrent claimers skip each other's rows. */
  lockClaimRows(query: AnySelect): AnySelect;

  /** Runs `work` holding the named lock, shared by every replica on this database. */
  withLock<R>(db: AnyKysely, name: string, work: () => Promise<R>): Promise<R>;

  /** The columns of a unique key a driver error says was violated, or undefined. */
  uniqueViolation(error: unknown): string[] | undefined;

  /** Runs the whole migration under a lock that keeps other replicas out. */
  withMigrationLock<R>(db: AnyKysely, work: () => Promise<R>): Promise<R>;

  /** Called first inside every migration's transaction (e.g. to set a lock timeout). */
  beforeMigration(db: AnyTransaction | AnyKysely): Promise<void>;

  /** Whether Kysely's migrator already runs each step in a transaction on this dialect. */
  readonly migratorUsesTransactions: boolean;

  /** The schema the migration tables live in, when the dialect has schemas. */
  migrationSchema(db: AnyKysely): Promise<string | undefined>;
}
