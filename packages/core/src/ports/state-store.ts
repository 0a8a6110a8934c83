import type { LeasedTableName, TableName, TableRows } from '../records.js';

/**
 * A comparison on one column. Several operators in one object all have to hold. A null
 * column matches `ne` and `notIn` (it differs from every value) and never `eq`, `in` or a
 * bound; an empty `in` matches nothing and an empty `notIn` everything.
 */
export interface Condition<V> {
  eq?: V;
  ne?: V;
  in?: readonly V[];
  notIn?: readonly V[];
  lt?: V;
  lte?: V;
  gt?: V;
  gte?: V;
  /** true: the column is null; false: it is not. */
  isNull?: boolean;
}

/**
 * A filter on a table's rows. A plain value means equality (`null` means "is null"); every
 * entry has to hold; `$or` holds when any of its filters holds.
 */
export type Where<R> = {
  [K in keyof R]?: R[K] | Condition<NonNullable<R[K]>>;
} & {
  $or?: readonly Where<R>[];
};

export type OrderBy<R> = readonly (readonly [keyof R & string, 'asc' | 'desc'])[];

export interface FindOptions<R> {
  where?: Where<R>;
  /**
   * Rows come back in this order (nulls first when ascending, last when descending; text by
   * character code, not by locale); without it the order is unspecified.
   */
  orderBy?: OrderBy<R>;
  limit?: number;
  offset?: number;
}

/** Reads and writes over the tables. Every call sees the writes made before it in its scope. */
export interface StateAccess {
  /** The row with this id, or undefined when there is none. */
  get<T extends TableName>(table: T, id: string): Promise<TableRows[T] | undefined>;

  /** The rows that match, in the requested order. */
  find<T extends TableName>(table: T, options?: FindOptions<TableRows[T]>): Promise<TableRows[T][]>;

  /** The first row that matches, or undefined. */
  findOne<T extends TableName>(
    table: T,
    options?: FindOptions<TableRows[T]>,
  ): Promise<TableRows[T] | undefined>;

  /** How many rows match. */
  count<T extends TableName>(table: T, where?: Where<TableRows[T]>): Promise<number>;

  /** Adds rows; a duplicate primary key throws and adds none of them. */
  insert<T extends TableName>(
    table: T,
    rows: TableRows[T] | readonly TableRows[T][],
  ): Promise<void>;

  /**
   * Sets the given columns on every matching row and returns how many rows changed. Guarded
   * writes pass the lease token in `where`, so a worker that lost its lease changes nothing.
   */
  update<T extends TableName>(
    table: T,
    where: Where<TableRows[T]>,
    patch: Partial<TableRows[T]>,
  ): Promise<number>;

  /** Removes every matching row and returns how many there were. */
  delete<T extends TableName>(table: T, where: Where<TableRows[T]>): Promise<number>;
}

/** A request to lease rows for background work. */
export interface ClaimRequest<T extends LeasedTableName> {
  /** Which rows are due (status, processing interval, owner filters). */
  where: Where<TableRows[T]>;
  orderBy?: OrderBy<TableRows[T]>;
  limit: number;
  /** The pipeline taking the rows; written to `lockOwner`. */
  owner: string;
  /** The new lease token, written to `lockToken`. */
  token: string;
  /** The current time: rows whose lease expired before it are free. */
  now: number;
  /** When the new lease ends. */
  expiresAt: number;
}

/** A lease held on one row. */
export interface Lease {
  id: string;
  token: string;
}

/**
 * The state of the server: users, projects, runs and the rest. Every adapter (in-memory,
 * SQLite, Postgres) passes the contract suite in `@dstack/core/testing`.
 */
export interface StateStore extends StateAccess {
  /**
   * Runs `work` in one transaction: it commits when `work` resolves and rolls back when it
   * throws. Nested calls on the transaction's own access run in the same transaction.
   * Calls on the store itself from inside `work` reject (use `tx`); a write through `tx` that
   * throws undoes only itself. Isolation is at least read committed (Postgres); the
   * in-memory and SQLite stores run transactions one at a time.
   */
  transaction<R>(work: (tx: StateAccess) => Promise<R>): Promise<R>;

  /**
   * Leases up to `limit` free rows that match (no lease, or an expired one) and returns them
   * with the new lease written. Two concurrent claims, in one process or in several replicas,
   * never return the same row.
   */
  claim<T extends LeasedTableName>(table: T, request: ClaimRequest<T>): Promise<TableRows[T][]>;

  /**
   * Extends leases that are still held (same token) to `expiresAt` and returns the ids that
   * were extended; a lease taken over by another worker is not extended.
   */
  renewLeases(
    table: LeasedTableName,
    leases: readonly Lease[],
    expiresAt: number,
  ): Promise<string[]>;

  /**
   * Runs `work` while holding the named lock, shared by every replica on the same database.
   * Single-replica stores may run it directly.
   */
  withLock<R>(name: string, work: () => Promise<R>): Promise<R>;

  /** Releases connections. Any call after close rejects. */
  close(): Promise<void>;
}
