import { tableColumns } from '@dstack/core';
import type { ColumnKind, TableName } from '@dstack/core';
import type { SqlDialect } from './sql-dialect.js';

// Every decoded row converts every column name; the names are few, so keep them.
const snakeNames = new Map<string, string>();

/** The SQL name of a record column: `lastProcessedAt` becomes `last_processed_at`. */
export function toSnakeCase(name: string): string {
  let snake = snakeNames.get(name);

  if (snake === undefined) {
    snake = name.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);
    snakeNames.set(name, snake);
  }

  return snake;
}

/** The kind of a column, or a clear error for a column the table does not have. */
export function columnKind(table: TableName, column: string): ColumnKind {
  const columns = tableColumns[table] as Record<string, ColumnKind> | undefined;

  if (!columns) {
    throw new Error(`unknown table ${table}`);
  }

  const kind = columns[column];

  if (!kind) {
    throw new Error(`unknown column ${column} on table ${table}`);
  }

  return kind;
}

/** Converts a record value to what the dialect stores for that kind. */
export function encodeValue(dialect: SqlDialect, kind: ColumnKind, value: unknown): unknown {
  if (value === null || value === undefined) {
    return null;
  }

  switch (kind) {
    case 'json':
      return JSON.stringify(value);
    case 'boolean':
      return dialect.encodeBoolean(Boolean(value));
    case 'time':
      return dialect.encodeTime(value as number);
    default:
      return value;
  }
}

/** Converts a stored value back to the record's form. */
export function decodeValue(kind: ColumnKind, value: unknown): unknown {
  if (value === null || value === undefined) {
    return null;
  }

  switch (kind) {
    case 'json':
      return typeof value === 'string' ? JSON.parse(value) : value;
    case 'boolean':
      return value === true || value === 1 || value === '1' || value === 't' || value === 1n;
    case 'time':
      return value instanceof Date ? value.getTime() : Number(value);
    case 'integer':
    case 'real':
      return Number(value);
    default:
      return value;
  }
}

/** A record (or patch) as a SQL row: snake_case names and stored values. */
export function encodeRow(
  dialect: SqlDialect,
  table: TableName,
  row: Record<string, unknown>,
): Record<string, unknown> {
  const encoded: Record<string, unknown> = {};

  for (const [column, value] of Object.entries(row)) {
    if (value !== undefined) {
      encoded[toSnakeCase(column)] = encodeValue(dialect, columnKind(table, column), value);
    }
  }

  return encoded;
}

/** A SQL row as a record: every column of the table, converted by its kind. */
export function decodeRow(table: TableName, row: Record<string, unknown>): Record<string, unknown> {
  const decoded: Record<string, unknown> = {};

  for (const [column, kind] of Object.entries(tableColumns[table] as Record<string, ColumnKind>)) {
    decoded[column] = decodeValue(kind, row[toSnakeCase(column)]);
  }

  return decoded;
}
