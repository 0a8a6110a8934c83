import {
  createMutex,
  DuplicateKeyError,
  guardStateStore,
  silentLogger,
  tableColumns,
} from '@dstack/core';
import type { Mutex } from '@dstack/core';
import { sql } from 'kysely';
import type {
  ClaimRequest,
  FindOptions,
  LeasedTableName,
  Lease,
  Logger,
  StateAccess,
  StateStore,
  TableName,
  Where,
} from '@dstack/core';
import { buildWhere } from './build-where.js';
import { columnKind, decodeRow, encodeRow, toSnakeCase } from './column-codec.js';
import type { AnyKysely, AnySelect, SqlDialect } from './sql-dialect.js';

/** Options of the shared SQL state store. */
export interface SqlStateStoreOptions {
  /** A ready Kysely instance; the store destroys it on close. */
  db: AnyKysely;
  dialect: SqlDialect;
  logger?: Logger;
}

type Row = Record<string, unknown>;

// SQLite allows 32766 bound parameters per statement and Postgres 65535.
const maxParametersPerStatement = 30_000;

function rowsPerInsert(table: TableName): number {
  const columns = Object.keys(tableColumns[table]).length;
  return Math.max(1, Math.floor(maxParametersPerStatement / columns));
}

function toDuplicateKey(dialect: SqlDialect, table: TableName, error: unknown): unknown {
  const columns = dialect.uniqueViolation(error);

  if (!columns) {
    return error;
  }

  const camel = columns.map((column) =>
    column.replace(/_([a-z])/g, (_, letter: string) => letter.toUpperCase()),
  );
  return new DuplicateKeyError(table, camel, { cause: error });
}

function applyOrder(query: AnySelect, table: TableName, options: FindOptions<Row>): AnySelect {
  let ordered = query;

  for (const [column, direction] of options.orderBy ?? []) {
    columnKind(table, column);
    ordered = ordered.orderBy(toSnakeCase(column), (item) =>
      direction === 'asc' ? item.asc().nullsFirst() : item.desc().nullsLast(),
    );
  }

  return ordered;
}

// A LIMIT past bigint (Postgres) or past an integer (SQLite) is an error there, and a negative
// one means "no limit" in SQLite only; callers may pass any number a client sent.
function boundedLimit(limit: number): number {
  if (Number.isNaN(limit) || limit <= 0) {
    return 0;
  }

  return Math.min(Math.floor(limit), Number.MAX_SAFE_INTEGER);
}

function applyPage(query: AnySelect, options: FindOptions<Row>): AnySelect {
  let paged = query;

  if (options.limit !== undefined) {
    paged = paged.limit(boundedLimit(options.limit));
  } else if (options.offset !== undefined) {
    // Both dialects need a LIMIT before an OFFSET; -1 and ALL mean "no limit" only in one.
    paged = paged.limit(Number.MAX_SAFE_INTEGER);
  }

  if (options.offset !== undefined) {
    paged = paged.offset(options.offset);
  }

  return paged;
}

/** The writes of one transaction, one at a time, each in a savepoint of its own. */
interface Savepoints {
  mutex: Mutex;
  count: number;
}

/**
 * Inside a transaction a failed write undoes only itself, as in the in-memory store: the
 * caller may catch a DuplicateKeyError and go on (Postgres would otherwise abort the whole
 * transaction, and a batched insert would keep its first batches).
 */
function writeAtomically<R>(
  db: AnyKysely,
  savepoints: Savepoints | undefined,
  write: () => Promise<R>,
): Promise<R> {
  if (!savepoints) {
    return write();
  }

  return savepoints.mutex.run(async () => {
    savepoints.count += 1;
    const name = sql.id(`state_write_${savepoints.count}`);
    await sql`savepoint ${name}`.execute(db);

    try {
      const result = await write();
      await sql`release savepoint ${name}`.execute(db);
      return result;
    } catch (error) {
      await sql`rollback to savepoint ${name}`.execute(db).catch(() => undefined);
      throw error;
    }
  });
}

function createAccess(db: AnyKysely, dialect: SqlDialect, savepoints?: Savepoints): StateAccess {
  const select = (table: TableName, options: FindOptions<Row> = {}): AnySelect => {
    const filtered = db
      .selectFrom(table)
      .selectAll()
      .where((eb) => buildWhere(eb, dialect, table, options.where));
    return applyPage(applyOrder(filtered, table, options), options);
  };

  const access = {
    async get(table: TableName, id: string) {
      const row = await select(table, { where: { id } }).executeTakeFirst();
      return row === undefined ? undefined : decodeRow(table, row);
    },

    async find(table: TableName, options?: FindOptions<Row>) {
      const rows = await select(table, options).execute();
      return rows.map((row: Row) => decodeRow(table, row));
    },

    async findOne(table: TableName, options?: FindOptions<Row>) {
      const row = await select(table, { ...options, limit: 1 }).executeTakeFirst();
      return row === undefined ? undefined : decodeRow(table, row);
    },

    async count(table: TableName, where?: Where<Row>) {
      const row = await db
        .selectFrom(table)
        .select((eb) => eb.fn.countAll().as('count'))
        .where((eb) => buildWhere(eb, dialect, table, where))
        .executeTakeFirstOrThrow();
      return Number(row.count);
    },

    async insert(table: TableName, input: Row | readonly Row[]) {
      const rows = (Array.isArray(input) ? input : [input]).map((row: Row) =>
        encodeRow(dialect, table, row),
      );
      const size = rowsPerInsert(table);
      const write = async (target: AnyKysely): Promise<void> => {
        for (let start = 0; start < rows.length; start += size) {
          await target.insertInto(table).values(rows.slice(start, start + size)).execute();
        }
      };

      if (rows.length === 0) {
        return;
      }

      try {
        if (rows.length <= size || savepoints) {
          await writeAtomically(db, savepoints, () => write(db));
        } else {
          await db.transaction().execute(write);
        }
      } catch (error) {
        throw toDuplicateKey(dialect, table, error);
      }
    },

    async update(table: TableName, where: Where<Row>, patch: Row) {
      const changes = encodeRow(dialect, table, patch);

      if (Object.keys(changes).length === 0) {
        return access.count(table, where);
      }

      try {
        const result = await writeAtomically(db, savepoints, () =>
          db
            .updateTable(table)
            .set(changes)
            .where((eb) => buildWhere(eb, dialect, table, where))
            .executeTakeFirst(),
        );
        return Number(result.numUpdatedRows);
      } catch (error) {
        throw toDuplicateKey(dialect, table, error);
      }
    },

    async delete(table: TableName, where: Where<Row>) {
      const result = await db
        .deleteFrom(table)
        .where((eb) => buildWhere(eb, dialect, table, where))
        .executeTakeFirst();
      return Number(result.numDeletedRows);
    },
  };

  return access as unknown as StateAccess;
}

/**
 * The StateStore over any SQL database Kysely speaks, with the dialect's differences passed
 * in. It runs no DDL: call `migrateToLatest` before opening it.
 */
export function createSqlStateStore(options: SqlStateStoreOptions): StateStore {
  const { db, dialect } = options;
  const log = (options.logger ?? silentLogger).child({ stateStore: dialect.name });
  const access = createAccess(db, dialect);

  const transaction = <R>(work: (tx: StateAccess) => Promise<R>): Promise<R> =>
    db
      .transaction()
      .execute((trx) => work(createAccess(trx, dialect, { mutex: createMutex(), count: 0 })));

  const claim = async (table: LeasedTableName, request: ClaimRequest<LeasedTableName>) => {
    if (request.limit <= 0) {
      return [];
    }

    return db.transaction().execute(async (trx) => {
      const due = trx
        .selectFrom(table)
        .select('id')
        .where((eb) =>
          eb.and([
            buildWhere(eb, dialect, table, request.where as Where<unknown>),
            eb.or([
              eb('lock_expires_at', 'is', null),
              eb('lock_expires_at', '<', dialect.encodeTime(request.now)),
            ]),
          ]),
        );
      const ordered = applyOrder(due, table, { orderBy: request.orderBy as never });
      const picked = await dialect.lockClaimRows(ordered.limit(request.limit)).execute();
      const ids = picked.map((row: Row) => row.id as string);

      if (ids.length === 0) {
        return [];
      }

      await trx
        .updateTable(table)
        .set({
          lock_owner: request.owner,
          lock_token: request.token,
          lock_expires_at: dialect.encodeTime(request.expiresAt),
        })
        .where('id', 'in', ids)
        .execute();

      log.debug({ table, owner: request.owner, rows: ids.length }, 'rows claimed');
      const rows = await trx.selectFrom(table).selectAll().where('id', 'in', ids).execute();
      const byId = new Map(rows.map((row: Row) => [row.id as string, decodeRow(table, row)]));
      return ids.map((id) => byId.get(id));
    });
  };

  const renewLeases = async (
    table: LeasedTableName,
    leases: readonly Lease[],
    expiresAt: number,
  ): Promise<string[]> => {
    if (leases.length === 0) {
      return [];
    }

    const rows = await db
      .updateTable(table)
      .set({ lock_expires_at: dialect.encodeTime(expiresAt) })
      .where((eb) =>
        eb.or(
          leases.map((lease) =>
            eb.and([eb('id', '=', lease.id), eb('lock_token', '=', lease.token)]),
          ),
        ),
      )
      .returning('id')
      .execute();
    const renewed = new Set(rows.map((row: Row) => row.id as string));
    return leases.filter((lease) => renewed.has(lease.id)).map((lease) => lease.id);
  };

  const store = {
    ...access,
    transaction,
    claim,
    renewLeases,
    withLock: <R>(name: string, work: () => Promise<R>) => dialect.withLock(db, name, work),
    close: () => db.destroy(),
  };

  return guardStateStore(store as unknown as StateStore);
}
