import type { Env } from '../domain/configurations.js';
import {
  configurationError,
  isPlainObject,
  setOwn,
  showValue,
  type FieldPath,
} from './configuration-error.js';

function isSentinel(item: Record<string, unknown>): boolean {
  return Object.keys(item).length === 1;
}

const ENV_ITEM_PATTERN = /^([a-zA-Z_][a-zA-Z0-9_]*)(=.*$|$)/s;

/**
 * Parses `env`: a map of names to values, or a list of `NAME=value` and bare `NAME` items.
 * A bare name becomes the placeholder `{key: NAME}`, filled from the client's environment.
 */
export function parseEnv(value: unknown, path: FieldPath): Env {
  const env: Env = {};
  if (Array.isArray(value)) {
    value.forEach((item, index) => {
      if (typeof item !== 'string' || !ENV_ITEM_PATTERN.test(item)) {
        throw configurationError(
          [...path, index],
          `invalid environment variable ${showValue(item)}, expected NAME=value or NAME`,
        );
      }

      const separator = item.indexOf('=');
      const key = separator === -1 ? item : item.slice(0, separator);
      if (Object.hasOwn(env, key)) {
        throw configurationError([...path, index], `duplicate environment variable: ${item}`);
      }

      setOwn(env, key, separator === -1 ? { key } : item.slice(separator + 1));
    });

    return env;
  }

  if (!isPlainObject(value)) {
    throw configurationError(path, 'must be a mapping or a list of NAME=value items');
  }

  for (const [key, item] of Object.entries(value)) {
    if (typeof item === 'string') {
      setOwn(env, key, item);
    } else if (typeof item === 'number' && Number.isFinite(item)) {
      setOwn(env, key, String(item));
    } else if (isPlainObject(item) && typeof item.key === 'string' && isSentinel(item)) {
      setOwn(env, key, { key: item.key });
    } else {
      throw configurationError([...path, key], `must be a string, got ${showValue(item)}`);
    }
  }

  return env;
}
