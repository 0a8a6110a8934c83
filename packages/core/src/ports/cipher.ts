/**
 * Protects sensitive values at rest. A stored value carries the type and name of the key
 * that wrote it (`enc:<type>:<name>:<payload>`), so keys can rotate.
 */
export interface Cipher {
  /** Encrypts with the first configured key. */
  encrypt(plaintext: string): string;

  /**
   * Decrypts with whichever configured key can; throws a DecryptionError naming the key the
   * value was written with when none can.
   */
  decrypt(stored: string): string;

  /** The name of the key that new values are written with. */
  readonly currentKeyName: string;
}
