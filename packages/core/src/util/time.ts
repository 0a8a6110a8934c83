/**
 * Formats epoch milliseconds the way the original's API does: ISO-8601 in UTC with a `Z`,
 * and fractional seconds (six digits) only when they are not zero.
 */
export function toWireTime(millis: number): string {
  const iso = new Date(millis).toISOString();
  const fraction = millis % 1000;

  if (fraction === 0) {
    return `${iso.slice(0, 19)}Z`;
  }

  return `${iso.slice(0, 19)}.${String(fraction).padStart(3, '0')}000Z`;
}

/** Same as toWireTime for a nullable value. */
export function toWireTimeOrNull(millis: number | null | undefined): string | null {
  return millis === null || millis === undefined ? null : toWireTime(millis);
}

const isoLike = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$/i;

/**
 * Parses an ISO-8601 datetime as requests send it (`T` or a space, `Z`, an offset, or none
 * for UTC) into epoch milliseconds; returns null when it is not one. Microseconds are cut.
 */
export function parseWireTime(value: string): number | null {
  if (!isoLike.test(value.trim())) {
    return null;
  }

  let text = value.trim().replace(' ', 'T');
  text = text.replace(/(\.\d{3})\d+/, '$1');

  if (!/(Z|[+-]\d{2}:?\d{2})$/i.test(text)) {
    text += 'Z';
  }

  const millis = Date.parse(text);
  return Number.isNaN(millis) ? null : millis;
}
