import { configurationError, showValue, type FieldPath } from './configuration-error.js';

const SECONDS_PER_UNIT: Record<string, number> = {
  s: 1,
  m: 60,
  h: 3600,
  d: 24 * 3600,
  w: 7 * 24 * 3600,
};

/** Parses a duration into whole seconds: a number, or text such as `30`, `30s`, `5m`, `1w`. */
export function parseDuration(value: unknown, path: FieldPath): number {
  if (typeof value === 'number' && Number.isFinite(value)) {
    return Math.trunc(value);
  }

  if (typeof value === 'string') {
    const trimmed = value.trim();
    if (/^[+-]?\d+$/.test(trimmed)) {
      return Number(trimmed);
    }

    const match = /^(\d+) *([smhdw])$/.exec(value);
    if (match) {
      return Number(match[1]) * (SECONDS_PER_UNIT[match[2]] ?? 1);
    }
  }

  throw configurationError(path, `cannot parse the duration ${showValue(value)}`);
}

/**
 * A duration that can be switched off (`max_duration`, `stop_duration`): `"off"` and `false`
 * give `"off"`, `true` and null give null (the default), negatives are rejected.
 */
export function parseOffDuration(value: unknown, path: FieldPath): 'off' | number | null {
  if (value === 'off' || value === false) {
    return 'off';
  }

  if (value === true || value === null || value === undefined) {
    return null;
  }

  const seconds = parseDuration(value, path);
  if (seconds < 0) {
    throw configurationError(path, 'duration cannot be negative');
  }

  return seconds;
}

/**
 * `idle_duration`: `"off"`, `false` and `-1` give -1, `true` and null give null; other
 * negatives stay as they are, since stored rows and old clients use them for "off".
 */
export function parseIdleDuration(value: unknown, path: FieldPath): number | null {
  if (value === 'off' || value === false || value === -1) {
    return -1;
  }

  if (value === true || value === null || value === undefined) {
    return null;
  }

  return parseDuration(value, path);
}

/** `inactivity_duration` of a dev environment: like an off-able duration, but off is null. */
export function parseInactivityDuration(value: unknown, path: FieldPath): number | null {
  const parsed = parseOffDuration(value, path);

  return typeof parsed === 'number' ? parsed : null;
}
