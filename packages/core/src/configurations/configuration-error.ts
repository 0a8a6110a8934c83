import { ServerClientError } from '../errors/server-errors.js';

/** Where a value sits in its input, e.g. `['configuration', 'resources', 'memory']`. */
export type FieldPath = readonly (string | number)[];

/** Formats a field path the way error messages show it: `configuration.ports.0`. */
export function formatFieldPath(path: FieldPath): string {
  return path.map(String).join('.');
}

/**
 * A 400 `ServerClientError` naming the field and the problem, with `fields` set to the path,
 * so the client can point at the key the user got wrong.
 */
export function configurationError(path: FieldPath, problem: string): ServerClientError {
  if (path.length === 0) {
    return new ServerClientError(problem);
  }

  const fields = path.map(String);

  return new ServerClientError(`${formatFieldPath(path)}: ${problem}`, 'error', [fields]);
}

/** Python-like rendering of a value inside a message, so users recognise what they wrote. */
export function showValue(value: unknown): string {
  if (typeof value === 'string') {
    return `'${value}'`;
  }

  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** Sets an own property even for keys like `__proto__`, which plain assignment would not. */
export function setOwn(target: object, key: string, value: unknown): void {
  Object.defineProperty(target, key, {
    value,
    enumerable: true,
    writable: true,
    configurable: true,
  });
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
