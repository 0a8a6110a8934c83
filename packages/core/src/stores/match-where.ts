import type { Condition, OrderBy, Where } from '../ports/state-store.js';

const operators = new Set(['eq', 'ne', 'in', 'notIn', 'lt', 'lte', 'gt', 'gte', 'isNull']);

/** Whether a filter value is a Condition object rather than a plain value to compare. */
export function isCondition(value: unknown): value is Condition<unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return false;
  }

  const keys = Object.keys(value);
  return keys.every((key) => operators.has(key));
}

/**
 * Orders two column values the way the SQL stores do: null before everything, numbers by
 * value, strings by code unit, false before true.
 */
export function compareValues(a: unknown, b: unknown): number {
  if (a === b) {
    return 0;
  }

  if (a === null || a === undefined) {
    return b === null || b === undefined ? 0 : -1;
  }

  if (b === null || b === undefined) {
    return 1;
  }

  return (a as number | string) < (b as number | string) ? -1 : 1;
}

function isNullish(value: unknown): boolean {
  return value === null || value === undefined;
}

function equals(a: unknown, b: unknown): boolean {
  return !isNullish(a) && compareValues(a, b) === 0;
}

function matchesCondition(value: unknown, condition: Condition<unknown>): boolean {
  const nullish = isNullish(value);

  if (condition.isNull !== undefined && condition.isNull !== nullish) {
    return false;
  }

  if (condition.eq !== undefined && !equals(value, condition.eq)) {
    return false;
  }

  // ne and notIn are null-safe: a null column differs from every value.
  if (condition.ne !== undefined && equals(value, condition.ne)) {
    return false;
  }

  if (condition.in !== undefined && !condition.in.some((item) => equals(value, item))) {
    return false;
  }

  if (condition.notIn !== undefined && condition.notIn.some((item) => equals(value, item))) {
    return false;
  }

  const bounds: [unknown, (order: number) => boolean][] = [
    [condition.lt, (order) => order < 0],
    [condition.lte, (order) => order <= 0],
    [condition.gt, (order) => order > 0],
    [condition.gte, (order) => order >= 0],
  ];

  return bounds.every(
    ([bound, holds]) => bound === undefined || (!nullish && holds(compareValues(value, bound))),
  );
}

/** Whether a row matches a filter, with the semantics every StateStore shares. */
export function matchesWhere<R>(row: R, where: Where<R> | undefined): boolean {
  if (!where) {
    return true;
  }

  for (const [column, expected] of Object.entries(where)) {
    if (expected === undefined) {
      continue;
    }

    if (column === '$or') {
      const alternatives = expected as readonly Where<R>[];

      if (!alternatives.some((alternative) => matchesWhere(row, alternative))) {
        return false;
      }

      continue;
    }

    const value = (row as Record<string, unknown>)[column];

    if (isCondition(expected)) {
      if (!matchesCondition(value, expected)) {
        return false;
      }
    } else if (expected === null ? !isNullish(value) : !equals(value, expected)) {
      return false;
    }
  }

  return true;
}

/** A comparator that sorts rows by the given columns. */
export function compareByOrder<R>(orderBy: OrderBy<R>): (a: R, b: R) => number {
  return (a, b) => {
    for (const [column, direction] of orderBy) {
      const order = compareValues(a[column as keyof R], b[column as keyof R]);

      if (order !== 0) {
        return direction === 'asc' ? order : -order;
      }
    }

    return 0;
  };
}
