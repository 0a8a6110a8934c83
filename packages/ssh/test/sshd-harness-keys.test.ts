import { utils } from 'ssh2';
import { describe, expect, it } from 'vitest';
import { generateKeyPair } from './sshd-harness.js';

describe('the harness key pairs', () => {
  // The generator the harness used before broke about one key in 256, so enough keys are
  // made here that a generator with that fault fails this test almost every run.
  it('parse with ssh2, and each public half matches its private key', () => {
    const failures: string[] = [];

    for (let index = 0; index < 800; index += 1) {
      const pair = generateKeyPair(`key-${index}`);
      const parsed = utils.parseKey(pair.privateKey);

      if (parsed instanceof Error) {
        failures.push(parsed.message);
        continue;
      }

      const key = Array.isArray(parsed) ? parsed[0]! : parsed;
      const [type, blob, comment] = pair.publicKey.split(' ');

      if (type !== 'ssh-ed25519' || comment !== `key-${index}` ||
        key.getPublicSSH().toString('base64') !== blob) {
        failures.push(`key-${index}: public half ${pair.publicKey}`);
      }
    }

    expect(failures).toEqual([]);
  }, 60_000);
});
