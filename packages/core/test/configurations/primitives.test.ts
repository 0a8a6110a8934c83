import { describe, expect, it } from 'vitest';
import {
  parseDuration,
  parseEnv,
  parseIdleDuration,
  parseInactivityDuration,
  parseIntRange,
  parseMemory,
  parseMemoryRange,
  parseOffDuration,
  ServerClientError,
} from '@dstack/core';

function failure(run: () => unknown): ServerClientError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ServerClientError);

    return error as ServerClientError;
  }

  throw new Error('expected a ServerClientError');
}

describe('memory', () => {
  it.each([
    [16, 16],
    ['16', 16],
    ['8GB', 8],
    ['8gb', 8],
    ['512MB', 0.5],
    ['512mb', 0.5],
    ['1TB', 1024],
    ['1.5 TB', 1536],
    [0.25, 0.25],
  ])('%j is %d GB', (input, expected) => {
    expect(parseMemory(input, ['m'])).toBe(expected);
  });

  it('rejects sizes that are not one', () => {
    const error = failure(() => parseMemory('lots', ['resources', 'memory']));
    expect(error.message).toBe("resources.memory: invalid memory size: 'lots'");
    expect(error.fields).toEqual([['resources', 'memory']]);
    expect(error.status).toBe(400);
    expect(error.code).toBe('error');
  });
});

describe('ranges', () => {
  it.each([
    ['24GB..', { min: 24, max: null }],
    ['..8', { min: null, max: 8 }],
    ['2..8', { min: 2, max: 8 }],
    ['2GB..1TB', { min: 2, max: 1024 }],
    [' 1 .. 2 ', { min: 1, max: 2 }],
    [16, { min: 16, max: 16 }],
    ['512MB', { min: 0.5, max: 0.5 }],
    [{ min: '8GB' }, { min: 8, max: null }],
  ])('memory range %j', (input, expected) => {
    expect(parseMemoryRange(input, ['m'])).toEqual(expected);
  });

  it.each([
    ['2..8', { min: 2, max: 8 }],
    ['2..', { min: 2, max: null }],
    [4, { min: 4, max: 4 }],
    ['4', { min: 4, max: 4 }],
    [{ max: 3 }, { min: null, max: 3 }],
  ])('int range %j', (input, expected) => {
    expect(parseIntRange(input, ['n'])).toEqual(expected);
  });

  it('rejects an empty range', () => {
    const error = failure(() => parseIntRange('..', ['configuration', 'resources', 'cpu']));
    expect(error.message).toBe('configuration.resources.cpu: invalid empty range: ..');
    expect(error.fields).toEqual([['configuration', 'resources', 'cpu']]);
  });

  it('rejects min greater than max', () => {
    const path = ['configuration', 'resources', 'memory'];
    const error = failure(() => parseMemoryRange('16GB..8GB', path));
    expect(error.message).toBe('configuration.resources.memory: min is greater than max');
    expect(error.fields).toEqual([['configuration', 'resources', 'memory']]);
  });

  it('rejects fractional counts and unknown keys', () => {
    expect(failure(() => parseIntRange('1.5..2', ['c'])).message).toBe(
      "c.min: must be an integer, got '1.5'",
    );
    expect(failure(() => parseIntRange({ min: 1, step: 2 }, ['c'])).message).toBe(
      'c.step: extra fields not permitted',
    );
    expect(failure(() => parseIntRange('1..2..3', ['c'])).message).toBe(
      "c: invalid range: '1..2..3'",
    );
  });
});

describe('durations', () => {
  it.each([
    [30, 30],
    ['30', 30],
    ['30s', 30],
    ['5m', 300],
    ['2h', 7200],
    ['1d', 86400],
    ['1w', 604800],
    ['10 m', 600],
  ])('%j is %d seconds', (input, expected) => {
    expect(parseDuration(input, ['d'])).toBe(expected);
  });

  it('rejects unknown units', () => {
    expect(failure(() => parseDuration('5y', ['configuration', 'max_duration'])).message).toBe(
      "configuration.max_duration: cannot parse the duration '5y'",
    );
  });

  it('maps off, true and false for off-able durations', () => {
    expect(parseOffDuration('off', ['d'])).toBe('off');
    expect(parseOffDuration(false, ['d'])).toBe('off');
    expect(parseOffDuration(true, ['d'])).toBeNull();
    expect(parseOffDuration(null, ['d'])).toBeNull();
    expect(parseOffDuration('2m', ['d'])).toBe(120);
    expect(failure(() => parseOffDuration(-5, ['x'])).message).toBe(
      'x: duration cannot be negative',
    );
  });

  it('maps off to -1 for idle durations and keeps negatives', () => {
    expect(parseIdleDuration('off', ['d'])).toBe(-1);
    expect(parseIdleDuration(false, ['d'])).toBe(-1);
    expect(parseIdleDuration(-1, ['d'])).toBe(-1);
    expect(parseIdleDuration(-20, ['d'])).toBe(-20);
    expect(parseIdleDuration(true, ['d'])).toBeNull();
    expect(parseIdleDuration('10m', ['d'])).toBe(600);
  });

  it('maps off to null for inactivity durations', () => {
    expect(parseInactivityDuration('off', ['d'])).toBeNull();
    expect(parseInactivityDuration(false, ['d'])).toBeNull();
    expect(parseInactivityDuration('30m', ['d'])).toBe(1800);
  });
});

describe('env', () => {
  it('reads a list of NAME=value and bare names', () => {
    expect(parseEnv(['A=1', 'B=', 'C', 'D=x=y'], ['env'])).toEqual({
      A: '1',
      B: '',
      C: { key: 'C' },
      D: 'x=y',
    });
  });

  it('reads a map and turns numbers into strings', () => {
    expect(parseEnv({ PORT: 8080, NAME: 'x', HOLE: { key: 'HOLE' } }, ['env'])).toEqual({
      PORT: '8080',
      NAME: 'x',
      HOLE: { key: 'HOLE' },
    });
  });

  it('keeps a variable named __proto__ as its own key', () => {
    const fromMap = parseEnv(JSON.parse('{"__proto__": {"key": "__proto__"}, "A": "1"}'), ['env']);
    expect(Object.keys(fromMap)).toEqual(['__proto__', 'A']);
    expect(Object.getPrototypeOf(fromMap)).toBe(Object.prototype);
    expect(structuredClone(fromMap)).toEqual(fromMap);
    const fromList = parseEnv(['__proto__=x'], ['env']);
    expect(Object.getOwnPropertyDescriptor(fromList, '__proto__')?.value).toBe('x');
    expect(Object.getPrototypeOf(fromList)).toBe(Object.prototype);
  });

  it('rejects duplicates and bad names', () => {
    const duplicate = failure(() => parseEnv(['A=1', 'A=2'], ['configuration', 'env']));
    expect(duplicate.message).toBe('configuration.env.1: duplicate environment variable: A=2');
    expect(duplicate.fields).toEqual([['configuration', 'env', '1']]);
    expect(failure(() => parseEnv(['1A=x'], ['env'])).message).toBe(
      "env.0: invalid environment variable '1A=x', expected NAME=value or NAME",
    );
    expect(failure(() => parseEnv({ A: true }, ['env'])).message).toBe(
      'env.A: must be a string, got true',
    );
  });
});
