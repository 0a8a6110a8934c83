import { DecryptionError } from '../errors/server-errors.js';
import type { Cipher } from '../ports/cipher.js';
import { silentLogger } from '../ports/logger.js';
import type { Logger } from '../ports/logger.js';
import { aesGcmOpen, aesGcmSeal, decodeUtf8 } from './aes-gcm.js';
import {
  decodeStrictBase64,
  EncryptionKeyConfigError,
  validateEncryptionKeys,
} from './encryption-key-config.js';
import type { EncryptionKeyConfig } from './encryption-key-config.js';
import { formatStoredValue, parseStoredValue } from './stored-value.js';

/** The name identity keys write into stored values. */
export const identityKeyName = 'noname';

interface Key {
  type: string;
  name: string;
  encrypt(plaintext: string): string;
  /** Throws when the payload was not written by this key. */
  decrypt(payload: string): string;
}

const identityKey: Key = {
  type: 'identity',
  name: identityKeyName,
  encrypt: (plaintext) => plaintext,
  decrypt: (payload) => payload,
};

function aesKey(name: string, secret: Buffer): Key {
  return {
    type: 'aes',
    name,
    encrypt: (plaintext) => aesGcmSeal(secret, Buffer.from(plaintext, 'utf8')).toString('base64'),
    decrypt: (payload) => decodeUtf8(aesGcmOpen(secret, Buffer.from(payload, 'base64'))),
  };
}

function buildKey(config: EncryptionKeyConfig): Key {
  if (config.type === 'identity') {
    return identityKey;
  }

  return aesKey(config.name, decodeStrictBase64(config.secret) as Buffer);
}

export interface CipherOptions {
  /** Gets a debug line (key names only) each time a key fails to decrypt a value. */
  logger?: Logger;
}

/**
 * The Cipher of config.yml's `encryption.keys`: the first key encrypts, every key can decrypt
 * (keys of the stored type, in order), and an identity key is always there to read plaintext
 * values. Throws an EncryptionKeyConfigError naming every bad key.
 */
export function createCipher(
  keys: readonly EncryptionKeyConfig[] = [],
  options: CipherOptions = {},
): Cipher {
  const problems = validateEncryptionKeys(keys);

  if (problems.length > 0) {
    throw new EncryptionKeyConfigError(problems);
  }

  const list = keys.map(buildKey);

  if (!list.some((key) => key.type === 'identity')) {
    list.push(identityKey);
  }

  const writer = list[0];
  const log = options.logger ?? silentLogger;

  return {
    currentKeyName: writer.name,

    encrypt(plaintext: string): string {
      return formatStoredValue({
        keyType: writer.type,
        keyName: writer.name,
        payload: writer.encrypt(plaintext),
      });
    },

    decrypt(stored: string): string {
      const parts = parseStoredValue(stored);

      if (parts === undefined) {
        throw new DecryptionError('unknown', 'unknown', 'not an encrypted value');
      }

      const candidates = list.filter((key) => key.type === parts.keyType);

      if (candidates.length === 0) {
        const reason = 'no key of this type is configured';

        throw new DecryptionError(parts.keyType, parts.keyName, reason);
      }

      // The stored name is only informative: the original tries every key of the type.
      for (const key of candidates) {
        try {
          return key.decrypt(parts.payload);
        } catch {
          log.debug({ keyType: key.type, keyName: key.name }, 'key cannot decrypt a value');
        }
      }

      throw new DecryptionError(parts.keyType, parts.keyName, 'no configured key can decrypt it');
    },
  };
}
