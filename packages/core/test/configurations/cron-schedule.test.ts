import { describe, expect, it } from 'vitest';
import {
  CronSyntaxError,
  nextCronTime,
  nextScheduledTime,
  parseCron,
  parseRunConfiguration,
} from '@dstack/core';
import { expectConfigurationError } from './helpers.js';

const at = (iso: string): number => Date.parse(iso);

/** The next fire time of one expression after an ISO instant, as ISO. */
function next(expression: string, after: string): string | null {
  const millis = nextCronTime(parseCron(expression), at(after));
  return millis === null ? null : new Date(millis).toISOString();
}

describe('nextCronTime', () => {
  it('reads weekday names and counts numeric weekdays from Monday, as the original', () => {
    // 2026-12-04 is a Friday.
    expect(next('0 9 * * mon-fri', '2026-12-04T10:00:00Z')).toBe('2026-12-07T09:00:00.000Z');
    expect(next('0 9 * * 0-4', '2026-12-04T10:00:00Z')).toBe('2026-12-07T09:00:00.000Z');
    // 1-5 is Tuesday to Saturday in the original's numbering.
    expect(next('0 9 * * 1-5', '2026-12-04T10:00:00Z')).toBe('2026-12-05T09:00:00.000Z');
    expect(next('0 9 * * 6', '2026-12-04T10:00:00Z')).toBe('2026-12-06T09:00:00.000Z');
    expect(next('0 9 * * SUN', '2026-12-04T10:00:00Z')).toBe('2026-12-06T09:00:00.000Z');
    expect(next('0 9 * * mon-fri', '2026-12-04T08:59:59Z')).toBe('2026-12-04T09:00:00.000Z');
  });

  it('steps through minutes and returns an instant that is itself a fire time', () => {
    expect(next('*/15 * * * *', '2026-12-04T10:07:30Z')).toBe('2026-12-04T10:15:00.000Z');
    expect(next('*/15 * * * *', '2026-12-04T10:15:00Z')).toBe('2026-12-04T10:15:00.000Z');
    expect(next('*/15 * * * *', '2026-12-04T10:15:00.001Z')).toBe('2026-12-04T10:30:00.000Z');
    expect(next('*/15 * * * *', '2026-12-31T23:50:00Z')).toBe('2027-01-01T00:00:00.000Z');
    expect(next('* * * * *', '2026-12-04T10:07:30.250Z')).toBe('2026-12-04T10:08:00.000Z');
  });

  it('reads lists, ranges with steps and a start with a step', () => {
    const expression = '5,10-20/5 8-10/2 * * *';
    expect(next(expression, '2026-12-04T08:21:00Z')).toBe('2026-12-04T10:05:00.000Z');
    expect(next(expression, '2026-12-04T10:20:01Z')).toBe('2026-12-05T08:05:00.000Z');
    expect(next('40/10 * * * *', '2026-12-04T10:41:00Z')).toBe('2026-12-04T10:50:00.000Z');
    expect(next('40/10 * * * *', '2026-12-04T10:51:00Z')).toBe('2026-12-04T11:40:00.000Z');
  });

  it('skips months without the day and finds the last day of each month', () => {
    expect(next('0 0 31 * *', '2026-04-15T00:00:00Z')).toBe('2026-05-31T00:00:00.000Z');
    expect(next('0 0 31 * *', '2026-05-31T00:00:01Z')).toBe('2026-07-31T00:00:00.000Z');
    expect(next('0 0 last * *', '2027-02-10T00:00:00Z')).toBe('2027-02-28T00:00:00.000Z');
    expect(next('0 0 last * *', '2028-02-10T00:00:00Z')).toBe('2028-02-29T00:00:00.000Z');
    expect(next('0 0 last * *', '2026-04-30T00:00:01Z')).toBe('2026-05-31T00:00:00.000Z');
    expect(next('0 0 1 jan *', '2026-12-04T10:00:00Z')).toBe('2027-01-01T00:00:00.000Z');
  });

  it('finds February 29 in leap years only, 2100 not being one', () => {
    expect(next('0 12 29 2 *', '2026-12-04T10:00:00Z')).toBe('2028-02-29T12:00:00.000Z');
    expect(next('0 12 29 feb *', '2028-02-29T12:00:01Z')).toBe('2032-02-29T12:00:00.000Z');
    expect(next('0 12 29 2 *', '2096-03-01T00:00:00Z')).toBe('2104-02-29T12:00:00.000Z');
  });

  it('needs day of month and day of week to match together, as the original', () => {
    // Standard cron would fire on every Friday and every 13th; the original waits for both.
    expect(next('0 0 13 * fri', '2026-12-04T10:00:00Z')).toBe('2027-08-13T00:00:00.000Z');
    expect(next('0 0 13 * 4', '2026-12-04T10:00:00Z')).toBe('2027-08-13T00:00:00.000Z');
    expect(next('0 0 29 2 mon', '2026-12-04T10:00:00Z')).toBe('2044-02-29T00:00:00.000Z');
  });

  it('runs on UTC: no hour is skipped or repeated where daylight saving changes', () => {
    // Europe moves its clocks on 2027-03-28 at 01:00 UTC, the US on 2027-03-14 and 11-07.
    expect(next('30 1 * * *', '2027-03-28T00:00:00Z')).toBe('2027-03-28T01:30:00.000Z');
    expect(next('30 2 * * *', '2027-03-14T00:00:00Z')).toBe('2027-03-14T02:30:00.000Z');
    const first = nextCronTime(parseCron('30 1 * * *'), at('2027-11-07T00:00:00Z'))!;
    const second = nextCronTime(parseCron('30 1 * * *'), first + 1)!;
    expect(second - first).toBe(24 * 3_600_000);
  });

  it('returns null for an expression no date matches', () => {
    expect(nextCronTime(parseCron('0 0 30 2 *'), at('2026-12-04T10:00:00Z'))).toBeNull();
    expect(nextCronTime(parseCron('0 0 31 4,6,9,11 *'), at('2026-12-04T10:00:00Z'))).toBeNull();
  });
});

describe('nextScheduledTime', () => {
  it('takes the earliest time over several expressions', () => {
    const crons = ['0 18 * * *', '30 6 * * *'];
    expect(nextScheduledTime(crons, at('2026-12-04T10:00:00Z'))).toBe(at('2026-12-04T18:00:00Z'));
    expect(nextScheduledTime(crons, at('2026-12-04T19:00:00Z'))).toBe(at('2026-12-05T06:30:00Z'));
    expect(nextScheduledTime(['0 0 30 2 *', '0 0 1 * *'], at('2026-12-04T10:00:00Z')))
      .toBe(at('2027-01-01T00:00:00Z'));
    expect(nextScheduledTime([], at('2026-12-04T10:00:00Z'))).toBeNull();
  });

  it('throws CronSyntaxError for an expression it cannot read', () => {
    expect(() => nextScheduledTime(['0 9 * *'], 0)).toThrow(CronSyntaxError);
    expect(() => nextScheduledTime(['0 9 * *'], 0)).toThrow('expected 5 fields');
  });
});

describe('validation of schedule.cron', () => {
  const task = (cron: unknown) =>
    parseRunConfiguration({ type: 'task', commands: ['true'], schedule: { cron } });

  it('accepts what the original accepts', () => {
    const accepted = [
      '0 8 * * mon-fri', '*/59 * * * *', '0 */23 * * *', '0 0 last * *', '0 0 1 JAN-Mar *',
      '0 0 * * 0,6', '15 23 * * *', '0 0 29 2 *', '0-0/5 * * * *', '  1  2  3  4  5 ',
    ];

    for (const cron of accepted) {
      expect(task(cron).schedule, cron).toEqual({ cron: [cron] });
    }
  });

  it('refuses the rest with a 400 naming the field', () => {
    const refused: [string, string][] = [
      ['0 0 * * 7', "bad day of week '7'"],
      ['0 0 * * sun-mon', "bad day of week 'sun-mon'"],
      ['*/60 * * * *', "bad minute '*/60'"],
      ['*/0 * * * *', "bad minute '*/0'"],
      ['0-10/20 * * * *', "bad minute '0-10/20'"],
      ['0 24 * * *', "bad hour '24'"],
      ['0 0 0 * *', "bad day of month '0'"],
      ['0 0 * 13 *', "bad month '13'"],
      ['0 0 * * monday', "bad day of week 'monday'"],
      ['0 0 * * mon-fri/2', "bad day of week 'mon-fri/2'"],
      ['mon * * * *', "bad minute 'mon'"],
      ['0 0 last * last', "bad day of week 'last'"],
      ['1,,2 * * * *', "bad minute '1,,2'"],
      ['@daily', 'expected 5 fields'],
      ['0 0 30 2 *', 'no month it allows has the day it names'],
    ];

    for (const [cron, problem] of refused) {
      expectConfigurationError(
        () => task(cron),
        `configuration.schedule.cron: invalid cron expression '${cron}': ${problem}`,
        ['configuration', 'schedule', 'cron'],
      );
    }

    expectConfigurationError(
      () => task(['0 9 * * *', '0 9 * * 8']),
      "configuration.schedule.cron.1: invalid cron expression '0 9 * * 8': bad day of week '8'",
      ['configuration', 'schedule', 'cron', '1'],
    );
  });
});
