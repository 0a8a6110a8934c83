import type { CronExpression } from '../configurations/cron.js';
import { parseCron } from '../configurations/cron.js';

export type { CronExpression } from '../configurations/cron.js';
export { CronSyntaxError, parseCron } from '../configurations/cron.js';

const minuteMillis = 60_000;
// The Gregorian calendar repeats every 400 years: a date not found by then never comes.
const searchMonths = 400 * 12 + 1;

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

/** 0 for Monday to 6 for Sunday, as the original numbers weekdays. */
function weekdayOf(year: number, month: number, day: number): number {
  return (new Date(Date.UTC(year, month - 1, day)).getUTCDay() + 6) % 7;
}

function firstFrom(values: ReadonlySet<number>, from: number, to: number): number | null {
  for (let value = from; value <= to; value += 1) {
    if (values.has(value)) {
      return value;
    }
  }

  return null;
}

function dayMatches(cron: CronExpression, year: number, month: number, day: number): boolean {
  const inMonth = cron.days.has(day) || (cron.lastDayOfMonth && day === daysInMonth(year, month));
  return inMonth && cron.weekdays.has(weekdayOf(year, month, day));
}

/** The first matching time of one day at or after hour:minute, as [hour, minute]. */
function timeInDay(
  cron: CronExpression,
  fromHour: number,
  fromMinute: number,
): [number, number] | null {
  for (let hour = fromHour; hour <= 23; hour += 1) {
    if (!cron.hours.has(hour)) {
      continue;
    }

    const minute = firstFrom(cron.minutes, hour === fromHour ? fromMinute : 0, 59);

    if (minute !== null) {
      return [hour, minute];
    }
  }

  return null;
}

/**
 * The first time the expression fires at or after `fromMillis`, in UTC epoch milliseconds:
 * times fall on whole minutes, so an instant that is exactly a fire time is returned as it
 * is (as the original does) and any later instant moves on to the next one. Null when the
 * expression never fires.
 */
export function nextCronTime(cron: CronExpression, fromMillis: number): number | null {
  const start = new Date(Math.ceil(fromMillis / minuteMillis) * minuteMillis);
  let year = start.getUTCFullYear();
  let month = start.getUTCMonth() + 1;
  let fromDay = start.getUTCDate();
  let fromHour = start.getUTCHours();
  let fromMinute = start.getUTCMinutes();

  for (let step = 0; step < searchMonths; step += 1) {
    if (cron.months.has(month)) {
      const length = daysInMonth(year, month);

      for (let day = fromDay; day <= length; day += 1) {
        if (!dayMatches(cron, year, month, day)) {
          continue;
        }

        const first = day === fromDay;
        const time = timeInDay(cron, first ? fromHour : 0, first ? fromMinute : 0);

        if (time !== null) {
          return Date.UTC(year, month - 1, day, time[0], time[1]);
        }
      }
    }

    month += 1;

    if (month > 12) {
      month = 1;
      year += 1;
    }

    fromDay = 1;
    fromHour = 0;
    fromMinute = 0;
  }

  return null;
}

/**
 * When a schedule next fires at or after `fromMillis`: the earliest over its expressions, or
 * null when none ever fires. Throws CronSyntaxError for an expression that cannot be read.
 */
export function nextScheduledTime(
  expressions: readonly string[],
  fromMillis: number,
): number | null {
  let earliest: number | null = null;

  for (const expression of expressions) {
    const next = nextCronTime(parseCron(expression), fromMillis);

    if (next !== null && (earliest === null || next < earliest)) {
      earliest = next;
    }
  }

  return earliest;
}
