import { createPrivateKey } from 'node:crypto';

const openSshKeyTypes = new Set([
  'ssh-rsa',
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
]);
const pemKeyTypes = new Set(['rsa', 'ec', 'ed25519']);
const openSshMagic = 'openssh-key-v1\0';
const openSshArmor = new RegExp(
  '^-----BEGIN OPENSSH PRIVATE KEY-----\\s*([A-Za-z0-9+/=\\s]*?)\\s*' +
    '-----END OPENSSH PRIVATE KEY-----$',
);

/** Reads the big-endian lengths and length-prefixed strings of the OpenSSH key format. */
function wireReader(buffer: Buffer) {
  let offset = 0;
  const uint32 = (): number | null => {
    if (offset + 4 > buffer.length) {
      return null;
    }

    offset += 4;
    return buffer.readUInt32BE(offset - 4);
  };
  const bytes = (): Buffer | null => {
    const length = uint32();

    if (length === null || offset + length > buffer.length) {
      return null;
    }

    offset += length;
    return buffer.subarray(offset - length, offset);
  };

  return { uint32, bytes };
}

/** An `openssh-key-v1` body holding one RSA, ECDSA or Ed25519 key without a passphrase. */
function isUsableOpenSshKey(base64: string): boolean {
  const data = Buffer.from(base64.replace(/\s+/g, ''), 'base64');

  if (data.subarray(0, openSshMagic.length).toString('latin1') !== openSshMagic) {
    return false;
  }

  const read = wireReader(data.subarray(openSshMagic.length));
  const cipher = read.bytes()?.toString('latin1');
  const kdf = read.bytes();
  const kdfOptions = read.bytes();
  const count = read.uint32();
  const publicBlob = read.bytes();
  const privateBlock = read.bytes();

  if (cipher !== 'none' || kdf === null || kdfOptions === null || count !== 1 ||
    publicBlob === null || privateBlock === null) {
    return false;
  }

  const keyType = wireReader(publicBlob).bytes()?.toString('latin1') ?? '';
  const checks = wireReader(privateBlock);
  const check = checks.uint32();

  // Both check numbers match only in an unencrypted block that is intact.
  return openSshKeyTypes.has(keyType) && check !== null && check === checks.uint32();
}

/**
 * Whether a private key text is one an SSH fleet can log in with: an RSA, ECDSA or Ed25519
 * key, in OpenSSH or PEM form, not encrypted with a passphrase.
 */
export function isUsableSshPrivateKey(text: string): boolean {
  const trimmed = text.trim();
  const openSsh = openSshArmor.exec(trimmed);

  if (openSsh !== null) {
    return isUsableOpenSshKey(openSsh[1] as string);
  }

  try {
    return pemKeyTypes.has(createPrivateKey(trimmed).asymmetricKeyType ?? '');
  } catch {
    return false;
  }
}
