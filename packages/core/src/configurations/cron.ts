import { configurationError, type FieldPath } from './configuration-error.js';

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const WEEKDAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

interface CronField {
  name: string;
  min: number;
  max: number;
  names?: string[];
  nameOffset?: number;
}

const FIELDS: CronField[] = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day of month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12, names: MONTHS, nameOffset: 1 },
  { name: 'day of week', min: 0, max: 7, names: WEEKDAYS, nameOffset: 0 },
];

function readValue(token: string, field: CronField): number | null {
  if (/^\d+$/.test(token)) {
    const value = Number(token);

    return value >= field.min && value <= field.max ? value : null;
  }

  const index = field.names?.indexOf(token.toLowerCase()) ?? -1;

  return index === -1 ? null : index + (field.nameOffset ?? 0);
}

function isValidPart(part: string, field: CronField): boolean {
  const [range, step, ...rest] = part.split('/');
  if (rest.length > 0 || (step !== undefined && !/^[1-9]\d*$/.test(step))) {
    return false;
  }

  if (range === '*') {
    return true;
  }

  const bounds = range.split('-');
  if (bounds.length > 2) {
    return false;
  }

  const values = bounds.map((bound) => readValue(bound, field));
  if (values.some((value) => value === null)) {
    return false;
  }

  return values.length === 1 || (values[0] as number) <= (values[1] as number);
}

/** Checks a five-field crontab expression (minute hour day month weekday). */
export function validateCron(expression: string, path: FieldPath): void {
  const parts = expression.trim().split(/\s+/);
  if (parts.length !== FIELDS.length) {
    throw configurationError(
      path,
      `invalid cron expression '${expression}': expected ${FIELDS.length} fields`,
    );
  }

  parts.forEach((part, index) => {
    const field = FIELDS[index];
    if (!part.split(',').every((item) => isValidPart(item, field))) {
      throw configurationError(
        path,
        `invalid cron expression '${expression}': bad ${field.name} '${part}'`,
      );
    }
  });
}
