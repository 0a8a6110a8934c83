import { createHash, randomUUID } from 'node:crypto';

/** A new random UUID v4, lowercase and hyphenated. */
export function newId(): string {
  return randomUUID();
}

/** SHA-256 hex of a string: how tokens are looked up without storing them in plaintext. */
export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

const uuidV4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;

/** Whether a string is a UUID v4 (the wire rejects other versions in several fields). */
export function isUuidV4(text: string): boolean {
  return uuidV4.test(text);
}
