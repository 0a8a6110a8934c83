import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { createCipher, EncryptionKeyConfigError, validateEncryptionKeys } from '@dstack/core';
import type { EncryptionKeyConfig } from '@dstack/core';

const fixtures = join(import.meta.dirname, '../../../../shared/fixtures/server');

function keysOf(file: string): EncryptionKeyConfig[] {
  const config = parse(readFileSync(`${fixtures}/${file}`, 'utf8')) as {
    encryption: { keys: EncryptionKeyConfig[] };
  };

  return config.encryption.keys;
}

describe('encryption keys of the fixtures', () => {
  it('config-bad-key.yml: names the key and both of its problems', () => {
    const keys = keysOf('config-bad-key.yml');

    expect(validateEncryptionKeys(keys)).toEqual([
      {
        path: ['encryption', 'keys', 0, 'name'],
        message: "key 'key-1': the name must be alphanumeric (letters and digits only)",
      },
      {
        path: ['encryption', 'keys', 0, 'secret'],
        message: "key 'key-1': the secret must decode to 32 bytes, not 5",
      },
    ]);

    const failure = (() => {
      try {
        createCipher(keys);
      } catch (error) {
        return error as EncryptionKeyConfigError;
      }

      return undefined;
    })();
    expect(failure).toBeInstanceOf(EncryptionKeyConfigError);
    expect(failure!.message).toContain('encryption.keys.0.name');
    expect(failure!.message).toContain('encryption.keys.0.secret');
    expect(failure!.message).not.toContain('c2hvcnQ=');
  });

  it('config-aes.yml: writes with key2 and reads key1 and plaintext values', () => {
    const keys = keysOf('config-aes.yml');
    const cipher = createCipher(keys);
    const [key2, key1] = keys;
    const underKey1 = createCipher([key1]).encrypt('old-value');

    expect(validateEncryptionKeys(keys)).toEqual([]);
    expect(key2).toMatchObject({ name: 'key2' });
    expect(cipher.currentKeyName).toBe('key2');
    expect(cipher.encrypt('new-value')).toMatch(/^enc:aes:key2:/);
    expect(cipher.decrypt(underKey1)).toBe('old-value');
    expect(cipher.decrypt('enc:identity:noname:plain-value')).toBe('plain-value');
  });

  it('refuses two AES keys of the same name in validateEncryptionKeys and createCipher', () => {
    const keys: EncryptionKeyConfig[] = [
      { type: 'aes', name: 'key1', secret: Buffer.alloc(32, 1).toString('base64') },
      { type: 'identity' },
      { type: 'aes', name: 'key1', secret: Buffer.alloc(32, 2).toString('base64') },
    ];

    expect(validateEncryptionKeys(keys)).toEqual([{
      path: ['encryption', 'keys', 2, 'name'],
      message: "key 'key1': the name is already used by encryption.keys.0; " +
        'each key needs a name of its own',
    }]);
    expect(() => createCipher(keys)).toThrow(
      /encryption\.keys\.2\.name: .*already used by encryption\.keys\.0/,
    );
    expect(validateEncryptionKeys([keys[0], { ...keys[2], name: 'key2' }])).toEqual([]);
  });
});
