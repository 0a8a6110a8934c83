import { execFileSync } from 'node:child_process';
import { webcrypto } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  aesGcmOpen,
  aesGcmSeal,
  createCipher,
  DecryptionError,
  parseStoredValue,
} from '@dstack/core';

/**
 * AES-256-GCM vectors with a 96-bit IV, empty AAD and a 128-bit tag, from NIST CAVP's
 * "GCM Test Vectors" (gcmtestvectors.zip, file gcmEncryptExtIV256.rsp, CAVS 14.0),
 * https://csrc.nist.gov/projects/cryptographic-algorithm-validation-program
 */
const nistVectors = [
  {
    name: 'PTlen=0 Count=0',
    key: 'b52c505a37d78eda5dd34f20c22540ea1b58963cf8e5bf8ffa85f9f2492505b4',
    iv: '516c33929df5a3284ff463d7',
    pt: '',
    ct: '',
    tag: 'bdc1ac884d332457a1d2664f168c76f0',
  },
  {
    name: 'PTlen=0 Count=1',
    key: '5fe0861cdc2690ce69b3658c7f26f8458eec1c9243c5ba0845305d897e96ca0f',
    iv: '770ac1a5a3d476d5d96944a1',
    pt: '',
    ct: '',
    tag: '196d691e1047093ca4b3d2ef4baba216',
  },
  {
    name: 'PTlen=128 Count=0',
    key: '31bdadd96698c204aa9ce1448ea94ae1fb4a9a0b3c9d773b51bb1822666b8f22',
    iv: '0d18e06c7c725ac9e362e1ce',
    pt: '2db5168e932556f8089a0622981d017d',
    ct: 'fa4362189661d163fcd6a56d8bf0405a',
    tag: 'd636ac1bbedd5cc3ee727dc2ab4a9489',
  },
  {
    name: 'PTlen=128 Count=1',
    key: '460fc864972261c2560e1eb88761ff1c992b982497bd2ac36c04071cbb8e5d99',
    iv: '8a4a16b9e210eb68bcb6f58d',
    pt: '99e4e926ffe927f691893fb79a96b067',
    ct: '133fc15751621b5f325c7ff71ce08324',
    tag: 'ec4e87e0cf74a13618d0b68636ba9fa7',
  },
  {
    name: 'PTlen=128 Count=14',
    key: '381873b5f9579d8241f0c61f0d9e327bb9f678691714aaa48ea7d92678d43fe7',
    iv: '3fc8bec23603158e012d65e5',
    pt: '7b622e9b408fe91f6fa800ecef838d36',
    ct: '8ca4de5b4e2ab22431a009f3ddd01bae',
    tag: 'b3a7f80e3edf322622731550164cd747',
  },
  {
    name: 'PTlen=408 Count=0',
    key: '1fded32d5999de4a76e0f8082108823aef60417e1896cf4218a2fa90f632ec8a',
    iv: '1f3afa4711e9474f32e70462',
    pt: '06b2c75853df9aeb17befd33cea81c630b0fc53667ff45199c629c8e15dce41e530aa792f796b8138eeab2e8'
      + '6c7b7bee1d40b0',
    ct: '91fbd061ddc5a7fcc9513fcdfdc9c3a7c5d4d64cedf6a9c24ab8a77c36eefbf1c5dc00bc50121b96456c8cd8'
      + 'b6ff1f8b3e480f',
    tag: '30096d340f3d5c42d82a6f475def23eb',
  },
];

const hex = (text: string): Buffer => Buffer.from(text, 'hex');

/** The stored form the original writes: base64 of nonce ‖ ciphertext ‖ tag. */
function storedFromVector(vector: (typeof nistVectors)[number]): string {
  const sealed = Buffer.concat([hex(vector.iv), hex(vector.ct), hex(vector.tag)]);

  return `enc:aes:nist:${sealed.toString('base64')}`;
}

function cipherFor(keyHex: string, name = 'nist'): ReturnType<typeof createCipher> {
  return createCipher([{ type: 'aes', name, secret: hex(keyHex).toString('base64') }]);
}

describe('AES-256-GCM against the NIST vectors', () => {
  for (const vector of nistVectors) {
    it(`seals ${vector.name} to the published ciphertext and tag`, () => {
      const sealed = aesGcmSeal(hex(vector.key), hex(vector.pt), hex(vector.iv));

      expect(sealed.toString('hex')).toBe(vector.iv + vector.ct + vector.tag);
    });

    it(`opens ${vector.name} from the stored layout`, () => {
      const payload = parseStoredValue(storedFromVector(vector))!.payload;
      const opened = aesGcmOpen(hex(vector.key), Buffer.from(payload, 'base64'));

      expect(opened.toString('hex')).toBe(vector.pt);
    });
  }

  it('decrypts the empty-plaintext vectors through the Cipher', () => {
    const [first, second] = nistVectors;

    expect(cipherFor(first.key).decrypt(storedFromVector(first))).toBe('');
    expect(cipherFor(second.key).decrypt(storedFromVector(second))).toBe('');
  });

  it('refuses a vector whose plaintext is not UTF-8 text, as the original does', () => {
    const vector = nistVectors[2];

    expect(() => cipherFor(vector.key).decrypt(storedFromVector(vector))).toThrow(DecryptionError);
  });

  it('refuses a vector with a flipped tag bit', () => {
    const vector = nistVectors[3];
    const tag = hex(vector.tag);
    tag[0] ^= 0x80;
    const sealed = Buffer.concat([hex(vector.iv), hex(vector.ct), tag]);

    expect(() => aesGcmOpen(hex(vector.key), sealed)).toThrow();
  });
});

// Written by Python's `cryptography` AESGCM (the library the original uses) with the key of
// vector "PTlen=128 Count=0", its IV as the nonce and no associated data.
const originalValues = [
  {
    text: 'ghp_token-from:the original',
    stored: 'enc:aes:key1:DRjgbHxyWsnjYuHOsJ4EyXEr7P6aYcU9fIB7U1mch5y/T4FOo0E41hSTpXjAPNkH'
      + 'oK0a/BBvzw==',
  },
  {
    text: 'ключ 🔑',
    stored: 'enc:aes:key1:DRjgbHxyWsnjYuHOB0ykLdTKVhzUvDzbgqujGmF7moebwqrN+yMNsok=',
  },
  { text: '', stored: 'enc:aes:key1:DRjgbHxyWsnjYuHOUnuPN8CVISjuij3d2J7n6Q==' },
];

describe("values in the original's format", () => {
  const cipher = cipherFor(nistVectors[2].key, 'key1');

  for (const value of originalValues) {
    it(`reads ${JSON.stringify(value.text)}`, () => {
      expect(cipher.decrypt(value.stored)).toBe(value.text);
    });
  }

  it('reads them when the key is listed after another key and under another name', () => {
    const other = Buffer.alloc(32, 7).toString('base64');
    const rotated = createCipher([
      { type: 'aes', name: 'newer', secret: other },
      { type: 'aes', name: 'renamed', secret: hex(nistVectors[2].key).toString('base64') },
    ]);

    expect(rotated.decrypt(originalValues[0].stored)).toBe(originalValues[0].text);
  });
});

async function openWithWebCrypto(keyHex: string, stored: string): Promise<string> {
  const sealed = Buffer.from(parseStoredValue(stored)!.payload, 'base64');
  const key = await webcrypto.subtle.importKey('raw', hex(keyHex), 'AES-GCM', false, ['decrypt']);
  const plain = await webcrypto.subtle.decrypt(
    { name: 'AES-GCM', iv: sealed.subarray(0, 12), tagLength: 128 },
    key,
    sealed.subarray(12),
  );

  return new TextDecoder().decode(plain);
}

describe('values written here, read by other AES-GCM implementations', () => {
  const keyHex = nistVectors[4].key;
  const cipher = cipherFor(keyHex, 'key1');
  const texts = ['a token', 'multi\nline: with colons', 'ünïcødé ✓', '', 'x'.repeat(5000)];

  it('WebCrypto decrypts every value given the key', async () => {
    for (const text of texts) {
      expect(await openWithWebCrypto(keyHex, cipher.encrypt(text))).toBe(text);
    }
  });

  it('WebCrypto rejects a value under another key', async () => {
    const stored = cipherFor(nistVectors[3].key).encrypt('secret');

    await expect(openWithWebCrypto(keyHex, stored)).rejects.toThrow();
  });

  const python = pythonWithCryptography();

  it.skipIf(!python)("Python's cryptography AESGCM decrypts them, as the original would", () => {
    const values = texts.map((text) => cipher.encrypt(text));
    const script = [
      'import base64, json, sys',
      'from cryptography.hazmat.primitives.ciphers.aead import AESGCM',
      'data = json.load(sys.stdin)',
      'key = AESGCM(bytes.fromhex(data["key"]))',
      'out = []',
      'for value in data["values"]:',
      '    raw = base64.b64decode(value.split(":", 3)[3])',
      '    out.append(key.decrypt(raw[:12], raw[12:], None).decode())',
      'print(json.dumps(out))',
    ].join('\n');
    const output = execFileSync('python3', ['-c', script], {
      input: JSON.stringify({ key: keyHex, values }),
      encoding: 'utf8',
    });

    expect(JSON.parse(output)).toEqual(texts);
  });
});

function pythonWithCryptography(): boolean {
  try {
    execFileSync('python3', ['-c', 'import cryptography'], { stdio: 'ignore' });

    return true;
  } catch {
    return false;
  }
}
