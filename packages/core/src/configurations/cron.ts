import { configurationError, type FieldPath } from './configuration-error.js';

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
// The original counts weekdays from Monday: 0 is Monday and 6 is Sunday.
const WEEKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
// The longest each month can be, so a day that no month of the expression has is caught.
const LONGEST_MONTH_DAYS = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

interface CronField {
  name: string;
  min: number;
  max: number;
  names?: string[];
  nameOffset?: number;
  /** Whether `last` (the month's last day) is accepted. */
  last?: boolean;
}

const FIELDS: CronField[] = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day of month', min: 1, max: 31, last: true },
  { name: 'month', min: 1, max: 12, names: MONTHS, nameOffset: 1 },
  { name: 'day of week', min: 0, max: 6, names: WEEKDAYS, nameOffset: 0 },
];

/**
 * A parsed five-field crontab expression, read the way the original reads it: every field
 * has to match (day of month and day of week together, not either), weekdays count from
 * Monday (0) to Sunday (6), and times are UTC.
 */
export interface CronExpression {
  source: string;
  minutes: ReadonlySet<number>;
  hours: ReadonlySet<number>;
  /** Days of the month, 1 to 31. */
  days: ReadonlySet<number>;
  /** `last` in the day field: the last day of each month. */
  lastDayOfMonth: boolean;
  /** 1 (January) to 12. */
  months: ReadonlySet<number>;
  /** 0 (Monday) to 6 (Sunday). */
  weekdays: ReadonlySet<number>;
}

/** A crontab expression that cannot be read; the message names the field at fault. */
export class CronSyntaxError extends Error {
  override name = 'CronSyntaxError';
}

function numberRange(first: number, last: number, step: number): number[] {
  const values: number[] = [];

  for (let value = first; value <= last; value += step) {
    values.push(value);
  }

  return values;
}

function readStep(text: string | undefined): number | null | undefined {
  if (text === undefined) {
    return null;
  }

  const step = Number(text);
  return step > 0 ? step : undefined;
}

/** The values one comma-separated item allows, or null when the field does not accept it. */
function readItem(item: string, field: CronField): number[] | 'last' | null {
  if (field.last === true && item.toLowerCase() === 'last') {
    return 'last';
  }

  const all = /^\*(?:\/(\d+))?$/.exec(item);

  if (all !== null) {
    const step = readStep(all[1]);

    if (step === undefined || (step !== null && step > field.max - field.min)) {
      return null;
    }

    return numberRange(field.min, field.max, step ?? 1);
  }

  const range = /^(\d+)(?:-(\d+))?(?:\/(\d+))?$/.exec(item);

  if (range !== null) {
    const first = Number(range[1]);
    const step = readStep(range[3]);
    // A single value is a range of one; a value with a step runs to the field's end.
    const last = range[2] !== undefined ? Number(range[2]) : (step === null ? first : null);

    if (step === undefined || first < field.min || (last !== null && last > field.max)) {
      return null;
    }

    if (last !== null && first > last) {
      return null;
    }

    // As the original: a range ending at 0 is measured to the field's end.
    if (step !== null && step > (last || field.max) - first) {
      return null;
    }

    return numberRange(first, last ?? field.max, step ?? 1);
  }

  // The original ignores whatever follows a name range (`mon-fri/2` runs Monday to Friday);
  // here such an item is refused instead of silently meaning something else.
  const names = /^([a-z]+)(?:-([a-z]+))?$/i.exec(item);

  if (names === null || field.names === undefined) {
    return null;
  }

  const first = field.names.indexOf(names[1]!.toLowerCase());
  const last = names[2] === undefined ? first : field.names.indexOf(names[2].toLowerCase());

  if (first === -1 || last === -1 || first > last) {
    return null;
  }

  return numberRange(first, last, 1).map((value) => value + (field.nameOffset ?? 0));
}

function readField(part: string, field: CronField): { values: Set<number>; last: boolean } {
  const values = new Set<number>();
  let last = false;

  for (const item of part.split(',')) {
    const read = readItem(item, field);

    if (read === null) {
      throw new CronSyntaxError(`bad ${field.name} '${part}'`);
    }

    if (read === 'last') {
      last = true;
    } else {
      read.forEach((value) => values.add(value));
    }
  }

  return { values, last };
}

/**
 * Reads a five-field crontab expression (minute hour day-of-month month day-of-week) with
 * lists, ranges, steps, `*`, month and weekday names and `last` for the day of the month.
 * Throws CronSyntaxError naming the field that is wrong.
 */
export function parseCron(expression: string): CronExpression {
  const parts = expression.trim().split(/\s+/);

  if (parts.length !== FIELDS.length) {
    throw new CronSyntaxError(`expected ${FIELDS.length} fields`);
  }

  const [minute, hour, day, month, weekday] = parts.map((part, index) =>
    readField(part, FIELDS[index]!));

  return {
    source: expression,
    minutes: minute!.values,
    hours: hour!.values,
    days: day!.values,
    lastDayOfMonth: day!.last,
    months: month!.values,
    weekdays: weekday!.values,
  };
}

/** Whether some date matches the expression's day and month at all (`0 0 30 2 *` never does). */
export function cronHasDate(cron: CronExpression): boolean {
  if (cron.lastDayOfMonth && cron.months.size > 0) {
    return true;
  }

  return [...cron.months].some((month) =>
    [...cron.days].some((day) => day <= LONGEST_MONTH_DAYS[month - 1]!));
}

/**
 * Checks a five-field crontab expression as the original accepts it. One that can never fire
 * (`0 0 30 2 *`) is refused too, rather than leaving a scheduled run with no next time.
 */
export function validateCron(expression: string, path: FieldPath): void {
  let cron: CronExpression;

  try {
    cron = parseCron(expression);
  } catch (error) {
    if (error instanceof CronSyntaxError) {
      throw configurationError(path, `invalid cron expression '${expression}': ${error.message}`);
    }

    throw error;
  }

  if (!cronHasDate(cron)) {
    throw configurationError(
      path,
      `invalid cron expression '${expression}': no month it allows has the day it names`,
    );
  }
}
