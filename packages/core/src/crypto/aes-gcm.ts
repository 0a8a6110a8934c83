import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

const nonceBytes = 12;
const tagBytes = 16;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * AES-256-GCM without associated data, laid out as nonce(12) ‖ ciphertext ‖ tag(16) — the
 * layout of Python's `AESGCM`, so either side reads the other's values.
 */
export function aesGcmSeal(
  key: Buffer,
  plaintext: Buffer,
  nonce: Buffer = randomBytes(nonceBytes),
): Buffer {
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: tagBytes });
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);

  return Buffer.concat([nonce, body, cipher.getAuthTag()]);
}

/** Opens a sealed value; throws when the key is wrong or the value was altered. */
export function aesGcmOpen(key: Buffer, sealed: Buffer): Buffer {
  if (sealed.length < nonceBytes + tagBytes) {
    throw new Error('the value is too short to be AES-GCM');
  }

  const nonce = sealed.subarray(0, nonceBytes);
  const tag = sealed.subarray(sealed.length - tagBytes);
  const body = sealed.subarray(nonceBytes, sealed.length - tagBytes);
  const decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: tagBytes });
  decipher.setAuthTag(tag);

  return Buffer.concat([decipher.update(body), decipher.final()]);
}

/** Decodes UTF-8 strictly, as Python's `bytes.decode()` does. */
export function decodeUtf8(bytes: Buffer): string {
  return utf8.decode(bytes);
}
