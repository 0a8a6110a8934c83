import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { createSshBackendProvider } from '../src/index.js';
import { remoteHostFor } from './helpers.js';
import { generateKeyPair, startSshd } from './sshd-harness.js';
import type { SshdHost } from './sshd-harness.js';

const provider = createSshBackendProvider({ connectTimeoutMillis: 5000 });
let host: SshdHost | undefined;

afterAll(async () => {
  await provider.close();
  await host?.stop();
});

it('creates ~/.ssh 700 and authorized_keys 600 when missing, removed on release', async () => {
  const userKey = generateKeyPair('user@laptop');
  const projectKey = generateKeyPair('dstack-project');
  host = await startSshd({
    address: '127.0.0.16',
    authorizedKeys: [userKey.publicKey],
    keysOutsideHome: true,
  });
  const remote = remoteHostFor(host, userKey, projectKey);
  const before = readdirSync(host.home);

  await provider.provisionHost(remote, { timeoutMillis: 20_000 });

  expect(statSync(join(host.home, '.ssh')).mode & 0o777).toBe(0o700);
  expect(statSync(host.authorizedKeysPath).mode & 0o777).toBe(0o600);
  expect(readFileSync(host.authorizedKeysPath, 'utf8')).toBe(
    `${projectKey.publicKey} # added by dstack\n`,
  );

  // Provisioning again finds the key in place and must not forget what it created.
  await provider.provisionHost(remote, { timeoutMillis: 20_000 });
  // The user drops their own key: releasing logs in with the project key instead.
  writeFileSync(join(host.dir, 'user_keys'), '');
  await provider.releaseHost(remote);

  expect(existsSync(join(host.home, '.ssh'))).toBe(false);
  expect(readdirSync(host.home)).toEqual(before);
});
