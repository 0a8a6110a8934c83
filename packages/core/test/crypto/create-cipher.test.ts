import { describe, expect, it } from 'vitest';
import {
  createCipher,
  DecryptionError,
  EncryptionKeyConfigError,
  parseStoredValue,
  validateEncryptionKeys,
} from '@dstack/core';

const key1 = { type: 'aes', name: 'key1', secret: Buffer.alloc(32, 1).toString('base64') } as const;
const key2 = { type: 'aes', name: 'key2', secret: Buffer.alloc(32, 2).toString('base64') } as const;

describe('createCipher', () => {
  it('writes with the first key and reads back', () => {
    const cipher = createCipher([key2, key1]);
    const stored = cipher.encrypt('top secret: with colons');

    expect(cipher.currentKeyName).toBe('key2');
    expect(stored.startsWith('enc:aes:key2:')).toBe(true);
    expect(stored).not.toContain('top secret');
    expect(cipher.decrypt(stored)).toBe('top secret: with colons');
  });

  it('uses a fresh nonce for every value', () => {
    const cipher = createCipher([key1]);

    expect(cipher.encrypt('same')).not.toBe(cipher.encrypt('same'));
  });

  it('lays the payload out as base64 of nonce, ciphertext and tag', () => {
    const stored = createCipher([key1]).encrypt('abcdef');
    const payload = Buffer.from(parseStoredValue(stored)!.payload, 'base64');

    expect(payload.length).toBe(12 + 6 + 16);
  });

  it('reads values of any configured key, whatever name they carry', () => {
    const old = createCipher([key1]).encrypt('old value');
    const renamed = old.replace('enc:aes:key1:', 'enc:aes:renamed:');
    const cipher = createCipher([key2, key1]);

    expect(cipher.decrypt(old)).toBe('old value');
    expect(cipher.decrypt(renamed)).toBe('old value');
  });

  it('reads identity values even when no identity key is listed', () => {
    const cipher = createCipher([key1]);

    expect(cipher.decrypt('enc:identity:noname:plain:text')).toBe('plain:text');
  });

  it('writes identity values with no keys or an identity key first', () => {
    expect(createCipher().encrypt('abc')).toBe('enc:identity:noname:abc');
    expect(createCipher([{ type: 'identity' }, key1]).encrypt('abc')).toBe(
      'enc:identity:noname:abc',
    );
    expect(createCipher().currentKeyName).toBe('noname');
  });

  it('throws a DecryptionError naming the key a value was written with', () => {
    const stored = createCipher([key1]).encrypt('lost');
    const cipher = createCipher([key2]);

    expect(() => cipher.decrypt(stored)).toThrow(DecryptionError);
    expect(() => cipher.decrypt(stored)).toThrow(/key1/);

    try {
      cipher.decrypt(stored);
    } catch (error) {
      expect((error as DecryptionError).keyName).toBe('key1');
      expect((error as DecryptionError).keyType).toBe('aes');
      expect((error as Error).message).not.toContain('lost');
    }
  });

  it('rejects an aes value when only identity is configured', () => {
    const stored = createCipher([key1]).encrypt('x');

    expect(() => createCipher().decrypt(stored)).toThrow(/aes key 'key1'/);
  });

  it('rejects a tampered value and a value that is not encrypted', () => {
    const cipher = createCipher([key1]);
    const stored = cipher.encrypt('payload');
    const parts = parseStoredValue(stored)!;
    const bytes = Buffer.from(parts.payload, 'base64');
    bytes[14] ^= 1;

    expect(() => cipher.decrypt(`enc:aes:key1:${bytes.toString('base64')}`)).toThrow(
      DecryptionError,
    );
    expect(() => cipher.decrypt('plain')).toThrow(DecryptionError);
    expect(() => cipher.decrypt('enc:rot13:x:abc')).toThrow(/rot13 key 'x'/);
  });

  it('refuses bad keys with every problem named', () => {
    const bad = [{ type: 'aes', name: 'key-1', secret: 'c2hvcnQ=' }] as const;

    expect(() => createCipher(bad)).toThrow(EncryptionKeyConfigError);
    expect(() => createCipher(bad)).toThrow(/key-1.*alphanumeric[\s\S]*32 bytes, not 5/);
  });
});

describe('validateEncryptionKeys', () => {
  it('accepts good keys', () => {
    expect(validateEncryptionKeys([key1, { type: 'identity' }])).toEqual([]);
  });

  it('names each problem with its path', () => {
    const problems = validateEncryptionKeys([
      key1,
      { type: 'aes', name: 'key-1', secret: 'c2hvcnQ=' },
      { type: 'aes', name: 'k3', secret: 'not base64!' },
      { type: 'aes', name: 'k4', secret: `${key1.secret.slice(0, -1)}` },
      { type: 'aes', secret: key1.secret, extra: 1 },
      { type: 'rsa', name: 'k6' },
      'nope',
    ]);

    expect(problems.map((problem) => problem.path.join('.'))).toEqual([
      'encryption.keys.1.name',
      'encryption.keys.1.secret',
      'encryption.keys.2.secret',
      'encryption.keys.3.secret',
      'encryption.keys.4.name',
      'encryption.keys.4.extra',
      'encryption.keys.5.type',
      'encryption.keys.6',
    ]);
    expect(problems[0].message).toBe(
      "key 'key-1': the name must be alphanumeric (letters and digits only)",
    );
    expect(problems[1].message).toBe("key 'key-1': the secret must decode to 32 bytes, not 5");
    expect(problems[2].message).toBe("key 'k3': the secret is not valid base64");
    expect(problems.map((problem) => problem.message).join()).not.toContain(key1.secret);
  });

  it('rejects URL-safe base64 and unpadded secrets', () => {
    const urlSafe = Buffer.alloc(32, 0xfb).toString('base64url');
    const unpadded = Buffer.alloc(32, 1).toString('base64').replace(/=+$/, '');

    expect(validateEncryptionKeys([{ type: 'aes', name: 'a', secret: urlSafe }])).toHaveLength(1);
    expect(validateEncryptionKeys([{ type: 'aes', name: 'a', secret: unpadded }])).toHaveLength(1);
  });

  it('accepts what Python accepts: stray low bits in the last character', () => {
    const canonical = Buffer.alloc(32, 1).toString('base64');
    const stray = `${canonical.slice(0, 42)}F=`;

    expect(canonical.slice(42)).toBe('E=');
    expect(validateEncryptionKeys([{ type: 'aes', name: 'a', secret: stray }])).toEqual([]);
  });

  it('takes a base path', () => {
    expect(validateEncryptionKeys({}, ['keys'])).toEqual([
      { path: ['keys'], message: 'encryption keys must be a list' },
    ]);
  });
});
