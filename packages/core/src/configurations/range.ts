import type { Range } from '../domain/resources.js';
import {
  configurationError,
  isPlainObject,
  showValue,
  type FieldPath,
} from './configuration-error.js';
import { parseMemory } from './memory.js';

type BoundParser = (value: unknown, path: FieldPath) => number;

/** Parses one integer bound: an integral number or its decimal text. */
export function parseInteger(value: unknown, path: FieldPath): number {
  if (typeof value === 'number' && Number.isInteger(value)) {
    return value;
  }

  if (typeof value === 'string' && /^[+-]?\d+$/.test(value.trim())) {
    return Number(value.trim());
  }

  throw configurationError(path, `must be an integer, got ${showValue(value)}`);
}

function parseRange(value: unknown, path: FieldPath, parseBound: BoundParser): Range {
  let bounds: Record<string, unknown>;
  if (typeof value === 'string' && value.includes('..')) {
    const parts = value.replace(/ /g, '').split('..');
    if (parts.length !== 2) {
      throw configurationError(path, `invalid range: ${showValue(value)}`);
    }

    bounds = { min: parts[0] || null, max: parts[1] || null };
  } else if (typeof value === 'string' || typeof value === 'number') {
    bounds = { min: value, max: value };
  } else if (isPlainObject(value)) {
    bounds = value;
  } else {
    throw configurationError(path, `invalid range: ${showValue(value)}`);
  }

  for (const key of Object.keys(bounds)) {
    if (key !== 'min' && key !== 'max') {
      throw configurationError([...path, key], 'extra fields not permitted');
    }
  }

  const min = bounds.min == null ? null : parseBound(bounds.min, [...path, 'min']);
  const max = bounds.max == null ? null : parseBound(bounds.max, [...path, 'max']);
  if (min === null && max === null) {
    throw configurationError(path, 'invalid empty range: ..');
  }

  if (min !== null && max !== null && min > max) {
    throw configurationError(path, 'min is greater than max');
  }

  return { min, max };
}

/** Parses an integer range: `8`, `"2..8"`, `"2.."`, `"..8"` or `{min, max}`. */
export function parseIntRange(value: unknown, path: FieldPath): Range {
  return parseRange(value, path, parseInteger);
}

/** Parses a memory range in GB: `16`, `"8GB.."`, `"512MB..1TB"` or `{min, max}`. */
export function parseMemoryRange(value: unknown, path: FieldPath): Range {
  return parseRange(value, path, parseMemory);
}
