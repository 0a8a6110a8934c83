import { configurationError, showValue, type FieldPath } from './configuration-error.js';

const NUMBER_PATTERN = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** Parses a decimal number written as text; null when it is not one. */
export function parseDecimal(text: string): number | null {
  const trimmed = text.trim();

  if (!NUMBER_PATTERN.test(trimmed)) {
    return null;
  }

  // `1e400` matches the pattern but overflows; stored as JSON it would turn into null.
  const value = Number(trimmed);

  return Number.isFinite(value) ? value : null;
}

/**
 * Parses a memory size into GB: a number is GB already, text may carry an `MB`, `GB` or `TB`
 * unit in any case (`512MB`, `16gb`, `1TB`) or none (GB).
 */
export function parseMemory(value: unknown, path: FieldPath): number {
  if (typeof value === 'number' && Number.isFinite(value)) {
    return value;
  }

  if (typeof value === 'string') {
    const text = value.replace(/ /g, '').toLowerCase();
    const units: [string, number][] = [
      ['tb', 1024],
      ['gb', 1],
      ['mb', 1 / 1024],
    ];
    for (const [unit, gigabytes] of units) {
      if (text.endsWith(unit)) {
        const amount = parseDecimal(text.slice(0, -unit.length));
        if (amount !== null && Number.isFinite(amount * gigabytes)) {
          return amount * gigabytes;
        }
      }
    }

    const bare = parseDecimal(text);
    if (bare !== null) {
      return bare;
    }
  }

  throw configurationError(path, `invalid memory size: ${showValue(value)}`);
}
