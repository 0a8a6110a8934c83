import type {
  ClaimRequest,
  FindOptions,
  Lease,
  OrderBy,
  StateAccess,
  StateStore,
  Where,
} from '../ports/state-store.js';
import { tableColumns } from '../records.js';
import type { LeasedTableName, TableName, TableRows } from '../records.js';
import { DuplicateKeyError } from './errors.js';
import { guardStateStore } from './guard-state-store.js';
import { compareByOrder, matchesWhere } from './match-where.js';
import { createKeyedMutex, createMutex } from './mutex.js';
import { tableUniqueKeys } from './unique-keys.js';

type Row = Record<string, unknown>;
type Tables = Map<TableName, Map<string, Row>>;

function emptyTables(): Tables {
  return new Map(Object.keys(tableColumns).map((table) => [table as TableName, new Map()]));
}

function checkColumns(table: TableName, columns: Iterable<string>): void {
  const known = tableColumns[table] as Record<string, unknown> | undefined;

  if (!known) {
    throw new Error(`unknown table ${table}`);
  }

  for (const column of columns) {
    if (column !== '$or' && !(column in known)) {
      throw new Error(`unknown column ${column} on table ${table}`);
    }
  }
}

function checkWhere(table: TableName, where: Where<unknown> | undefined): void {
  if (!where) {
    return;
  }

  checkColumns(table, Object.keys(where));
  where.$or?.forEach((alternative) => checkWhere(table, alternative));
}

/** Fills the columns a row leaves out with null, as a SQL insert would. */
function completeRow(table: TableName, row: Row): Row {
  checkColumns(table, Object.keys(row));

  const complete: Row = {};

  for (const column of Object.keys(tableColumns[table])) {
    complete[column] = row[column] === undefined ? null : row[column];
  }

  return structuredClone(complete);
}

function keyOf(row: Row, columns: readonly string[]): string | undefined {
  const values = columns.map((column) => row[column]);

  // SQL unique indexes let any number of rows share a key that has a null in it.
  return values.some((value) => value === null || value === undefined)
    ? undefined
    : JSON.stringify(values);
}

function checkUnique(table: TableName, rows: Iterable<Row>): void {
  const keys: readonly (readonly string[])[] = [['id'], ...tableUniqueKeys[table]];
  const seen = keys.map(() => new Set<string>());

  for (const row of rows) {
    keys.forEach((columns, index) => {
      const key = keyOf(row, columns);

      if (key === undefined) {
        return;
      }

      if (seen[index].has(key)) {
        throw new DuplicateKeyError(table, columns);
      }

      seen[index].add(key);
    });
  }
}

function createAccess(tables: () => Tables): StateAccess {
  const rowsOf = (table: TableName): Map<string, Row> => {
    const rows = tables().get(table);

    if (!rows) {
      throw new Error(`unknown table ${table}`);
    }

    return rows;
  };

  const select = (table: TableName, options: FindOptions<Row> = {}): Row[] => {
    checkWhere(table, options.where);
    checkColumns(table, (options.orderBy ?? []).map(([column]) => column));

    let rows = [...rowsOf(table).values()].filter((row) => matchesWhere(row, options.where));

    if (options.orderBy && options.orderBy.length > 0) {
      rows.sort(compareByOrder(options.orderBy));
    }

    const offset = options.offset ?? 0;
    // As the SQL stores: a negative limit returns no rows.
    const limit = options.limit === undefined ? undefined : Math.max(0, options.limit);
    rows = rows.slice(offset, limit === undefined ? undefined : offset + limit);
    return rows;
  };

  const access = {
    async get(table: TableName, id: string) {
      const row = rowsOf(table).get(id);
      return row === undefined ? undefined : structuredClone(row);
    },

    async find(table: TableName, options?: FindOptions<Row>) {
      return structuredClone(select(table, options));
    },

    async findOne(table: TableName, options?: FindOptions<Row>) {
      const [row] = select(table, { ...options, limit: 1 });
      return row === undefined ? undefined : structuredClone(row);
    },

    async count(table: TableName, where?: Where<Row>) {
      return select(table, { where }).length;
    },

    async insert(table: TableName, input: Row | readonly Row[]) {
      const rows = (Array.isArray(input) ? input : [input]).map((row) => completeRow(table, row));
      const existing = rowsOf(table);
      checkUnique(table, [...existing.values(), ...rows]);

      for (const row of rows) {
        existing.set(row.id as string, row);
      }
    },

    async update(table: TableName, where: Where<Row>, patch: Row) {
      const changes = Object.fromEntries(
        Object.entries(patch).filter(([, value]) => value !== undefined),
      );
      checkColumns(table, Object.keys(changes));

      const matched = new Set(select(table, { where }));

      if (matched.size === 0) {
        return 0;
      }

      const existing = rowsOf(table);
      const next = [...existing.values()].map((row) =>
        matched.has(row) ? { ...row, ...structuredClone(changes) } : row,
      );
      checkUnique(table, next);
      existing.clear();

      for (const row of next) {
        existing.set(row.id as string, row);
      }

      return matched.size;
    },

    async delete(table: TableName, where: Where<Row>) {
      const matched = select(table, { where });
      const existing = rowsOf(table);

      for (const row of matched) {
        existing.delete(row.id as string);
      }

      return matched.length;
    },
  };

  return access as unknown as StateAccess;
}

/**
 * A StateStore that keeps everything in this process: for tests and for trying the server
 * without a database. Rows are copied on the way in and out, transactions run one at a time
 * and roll back when their work throws.
 */
export function createMemoryStateStore(): StateStore {
  let tables = emptyTables();
  const mutex = createMutex();
  const locks = createKeyedMutex();
  const access = createAccess(() => tables);
  const serialised = <R>(work: () => Promise<R>): Promise<R> => mutex.run(work);

  const transaction = <R>(work: (tx: StateAccess) => Promise<R>): Promise<R> =>
    serialised(async () => {
      const snapshot = new Map([...tables].map(([name, rows]) => [name, new Map(rows)]));

      try {
        return await work(access);
      } catch (error) {
        tables = snapshot;
        throw error;
      }
    });

  const single =
    <K extends keyof StateAccess>(method: K) =>
    (...args: unknown[]) =>
      serialised(() => (access[method] as (...a: unknown[]) => Promise<unknown>)(...args));

  const store = {
    get: single('get'),
    find: single('find'),
    findOne: single('findOne'),
    count: single('count'),
    insert: single('insert'),
    update: single('update'),
    delete: single('delete'),
    transaction,

    claim<T extends LeasedTableName>(table: T, request: ClaimRequest<T>) {
      return serialised(async () => {
        checkWhere(table, request.where);

        const rows = tables.get(table) as Map<string, Row>;
        const due = [...rows.values()].filter(
          (row) =>
            matchesWhere(row, request.where as Where<Row>) &&
            (row.lockExpiresAt === null || (row.lockExpiresAt as number) < request.now),
        );

        if (request.orderBy && request.orderBy.length > 0) {
          due.sort(compareByOrder(request.orderBy as OrderBy<Row>));
        }

        const lease = {
          lockOwner: request.owner,
          lockToken: request.token,
          lockExpiresAt: request.expiresAt,
        };
        const claimed = due
          .slice(0, Math.max(0, request.limit))
          .map((row): Row => ({ ...row, ...lease }));

        for (const row of claimed) {
          rows.set(row.id as string, row);
        }

        return structuredClone(claimed) as unknown as TableRows[T][];
      });
    },

    renewLeases(table: LeasedTableName, leases: readonly Lease[], expiresAt: number) {
      return transaction(async (tx) => {
        const renewed: string[] = [];

        for (const lease of leases) {
          const where = { id: lease.id, lockToken: lease.token };

          if ((await tx.update(table, where, { lockExpiresAt: expiresAt })) > 0) {
            renewed.push(lease.id);
          }
        }

        return renewed;
      });
    },

    withLock<R>(name: string, work: () => Promise<R>): Promise<R> {
      return locks.run(name, work);
    },

    async close() {
      await mutex.run(async () => undefined);
      tables = emptyTables();
    },
  };

  return guardStateStore(store as unknown as StateStore);
}
