/** The parts of a stored encrypted value `enc:<type>:<name>:<payload>`. */
export interface StoredValueParts {
  keyType: string;
  keyName: string;
  payload: string;
}

/**
 * Splits a stored value on ':' at most three times, as the original does (the payload may
 * hold colons; the first part is not checked). Undefined when there are fewer than four parts.
 */
export function parseStoredValue(stored: string): StoredValueParts | undefined {
  const first = stored.indexOf(':');
  const second = first < 0 ? -1 : stored.indexOf(':', first + 1);
  const third = second < 0 ? -1 : stored.indexOf(':', second + 1);

  if (third < 0) {
    return undefined;
  }

  return {
    keyType: stored.slice(first + 1, second),
    keyName: stored.slice(second + 1, third),
    payload: stored.slice(third + 1),
  };
}

/** Builds the stored form of a value encrypted by the named key. */
export function formatStoredValue(parts: StoredValueParts): string {
  return `enc:${parts.keyType}:${parts.keyName}:${parts.payload}`;
}
