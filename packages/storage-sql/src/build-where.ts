import { isCondition } from '@dstack/core';
import type { Condition, TableName, Where } from '@dstack/core';
import { sql } from 'kysely';
import type { Expression, ExpressionBuilder, SqlBool } from 'kysely';
import { columnKind, encodeValue, toSnakeCase } from './column-codec.js';
import type { SqlDialect } from './sql-dialect.js';

type AnyBuilder = ExpressionBuilder<any, any>;

const never = sql<SqlBool>`1 = 0`;

function conditionParts(
  eb: AnyBuilder,
  column: string,
  condition: Condition<unknown>,
  encode: (value: unknown) => unknown,
): Expression<SqlBool>[] {
  const ref = eb.ref(column);
  const parts: Expression<SqlBool>[] = [];

  if (condition.isNull !== undefined) {
    parts.push(eb(ref, condition.isNull ? 'is' : 'is not', null));
  }

  if (condition.eq !== undefined) {
    parts.push(eb(ref, '=', encode(condition.eq)));
  }

  // ne and notIn are null-safe: a null column differs from every value.
  if (condition.ne !== undefined) {
    parts.push(eb.or([eb(ref, '<>', encode(condition.ne)), eb(ref, 'is', null)]));
  }

  if (condition.in !== undefined) {
    parts.push(condition.in.length === 0 ? never : eb(ref, 'in', condition.in.map(encode)));
  }

  if (condition.notIn !== undefined && condition.notIn.length > 0) {
    parts.push(eb.or([eb(ref, 'not in', condition.notIn.map(encode)), eb(ref, 'is', null)]));
  }

  const bounds = [
    ['<', condition.lt],
    ['<=', condition.lte],
    ['>', condition.gt],
    ['>=', condition.gte],
  ] as const;

  for (const [operator, bound] of bounds) {
    if (bound !== undefined) {
      parts.push(eb(ref, operator, encode(bound)));
    }
  }

  return parts;
}

/** The SQL form of a StateStore filter on one table, with values converted by column kind. */
export function buildWhere(
  eb: AnyBuilder,
  dialect: SqlDialect,
  table: TableName,
  where: Where<unknown> | undefined,
): Expression<SqlBool> {
  const parts: Expression<SqlBool>[] = [];

  for (const [column, expected] of Object.entries(where ?? {})) {
    if (expected === undefined) {
      continue;
    }

    if (column === '$or') {
      const alternatives = expected as readonly Where<unknown>[];
      parts.push(eb.or(alternatives.map((item) => buildWhere(eb, dialect, table, item))));
      continue;
    }

    const kind = columnKind(table, column);
    const name = toSnakeCase(column);
    const encode = (value: unknown): unknown => encodeValue(dialect, kind, value);

    if (isCondition(expected)) {
      parts.push(...conditionParts(eb, name, expected, encode));
    } else if (expected === null) {
      parts.push(eb(eb.ref(name), 'is', null));
    } else {
      parts.push(eb(eb.ref(name), '=', encode(expected)));
    }
  }

  return eb.and(parts);
}
