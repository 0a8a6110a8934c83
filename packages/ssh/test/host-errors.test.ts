import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { cpus } from 'node:os';
import type { RemoteHost } from '@dstack/core';
import { createSshBackendProvider, SshHostError } from '../src/index.js';
import type { SshBackendProvider } from '../src/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentJob, remoteHostFor, text, untilFinished } from './helpers.js';
import { freePort, generateKeyPair, startSshd } from './sshd-harness.js';
import type { SshdHost } from './sshd-harness.js';

const userKey = generateKeyPair('user@laptop');
const otherKey = generateKeyPair('someone-else');
const projectKey = generateKeyPair('dstack-project');
const started: SshdHost[] = [];
const sockets = new Set<Socket>();
let silent: Server | undefined;
let provider: SshBackendProvider;

async function sshd(address: string, keys: string[], withoutPython = false): Promise<SshdHost> {
  const host = await startSshd({ address, authorizedKeys: keys, withoutPython });
  started.push(host);

  return host;
}

/** Provisions and returns the error with how long it took to come. */
async function failure(
  host: RemoteHost,
  timeoutMillis = 20_000,
): Promise<{ error: SshHostError; millis: number }> {
  const start = Date.now();
  const error = await provider.provisionHost(host, { timeoutMillis }).then(
    () => {
      throw new Error('provisioning succeeded');
    },
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(SshHostError);

  return { error: error as SshHostError, millis: Date.now() - start };
}

beforeAll(() => {
  provider = createSshBackendProvider({ connectTimeoutMillis: 1500, commandTimeoutMillis: 10_000 });
});

afterAll(async () => {
  await provider?.close();
  for (const socket of sockets) {
    socket.destroy();
  }

  await new Promise((resolve) => (silent ? silent.close(resolve) : resolve(undefined)));
  for (const host of started) {
    await host.stop();
  }
});

describe('a host that cannot be used', () => {
  it('reports a refused connection when nothing listens, at once', async () => {
    const port = await freePort('127.0.0.4');
    const host: RemoteHost = {
      ...remoteHostFor({ address: '127.0.0.4', port } as SshdHost, userKey, projectKey),
    };

    const { error, millis } = await failure(host);

    expect(error.message).toBe(
      `root@127.0.0.4:${port}: connection refused (nothing listens on port ${port})`,
    );
    expect(error.reason).toBe('refused');
    expect(millis).toBeLessThan(1500);
  });

  it('reports a key the host refuses as failed authentication, never prompting', async () => {
    const host = await sshd('127.0.0.5', [otherKey.publicKey]);

    const { error, millis } = await failure(remoteHostFor(host, userKey, projectKey));

    expect(error.message).toBe(
      `root@127.0.0.5:${host.port}: authentication failed: ` +
        'the host did not accept the private key (publickey only)',
    );
    expect(error.reason).toBe('auth_failed');
    expect(millis).toBeLessThan(3000);
    expect(readFileSync(host.authorizedKeysPath, 'utf8')).toBe(`${otherKey.publicKey}\n`);
  });

  it('gives up on a port that never speaks SSH within the connect timeout', async () => {
    silent = createServer((socket) => {
      sockets.add(socket);
    });
    await new Promise<void>((resolve) => silent?.listen(0, '127.0.0.6', resolve));
    const address = silent.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    const host = remoteHostFor({ address: '127.0.0.6', port } as SshdHost, userKey, projectKey);

    const { error, millis } = await failure(host);

    expect(error.message).toMatch(new RegExp(`^root@127\\.0\\.0\\.6:${port}: `));
    expect(error.reason).toBe('timeout');
    expect(millis).toBeGreaterThanOrEqual(1400);
    expect(millis).toBeLessThan(4000);
  });

  it('keeps to the total provisioning timeout', async () => {
    const port = (silent?.address() as { port: number }).port;
    const host = remoteHostFor({ address: '127.0.0.6', port } as SshdHost, userKey, projectKey);

    const { error, millis } = await failure(host, 500);

    expect(error.message).toMatch(/^root@127\.0\.0\.6:\d+: /);
    expect(millis).toBeLessThan(1200);
  });

  it('reports a host without python3, which the agent needs, and changes nothing', async () => {
    const host = await sshd('127.0.0.7', [userKey.publicKey], true);

    const { error } = await failure(remoteHostFor(host, userKey, projectKey));

    expect(error.message).toBe(
      `root@127.0.0.7:${host.port}: python3 is not installed ` +
        '(the agent needs python3 3.6 or newer)',
    );
    expect(error.reason).toBe('missing_requirement');
    expect(readFileSync(host.authorizedKeysPath, 'utf8')).toBe(`${userKey.publicKey}\n`);
  });

  it('reports blocks that do not divide the CPUs', async () => {
    const host = await sshd('127.0.0.8', [userKey.publicKey]);
    const blocks = cpus().length + 1;

    const { error } = await failure(remoteHostFor(host, userKey, projectKey, { blocks }));

    expect(error.message).toBe(
      `root@127.0.0.8:${host.port}: cannot split ${cpus().length} CPUs and 0 GPUs ` +
        `into ${blocks} blocks`,
    );
  });

  it('reports an internal_ip that is not an address of the host', async () => {
    const host = started.find((item) => item.address === '127.0.0.8') as SshdHost;
    const remote = remoteHostFor(host, userKey, projectKey, { internalIp: '10.255.0.9' });

    const { error } = await failure(remote);

    expect(error.reason).toBe('bad_network');
    expect(error.message).toContain(
      `root@127.0.0.8:${host.port}: internal_ip 10.255.0.9 is not an address of the host`,
    );
  });

  it('refuses a project without an SSH key pair before connecting', async () => {
    const host = started.find((item) => item.address === '127.0.0.8') as SshdHost;
    const remote = remoteHostFor(host, userKey, projectKey, { projectPublicKey: '' });

    const { error } = await failure(remote);

    expect(error.message).toBe(
      `root@127.0.0.8:${host.port}: the project has no usable SSH key pair`,
    );
  });

  it('reports a private key that cannot be parsed', async () => {
    const host = started.find((item) => item.address === '127.0.0.8') as SshdHost;
    const remote = remoteHostFor(host, userKey, projectKey, {
      privateKey: '-----BEGIN OPENSSH PRIVATE KEY-----\nnot a key\n',
    });

    const { error } = await failure(remote);

    expect(error.reason).toBe('bad_key');
    expect(error.message).toMatch(
      new RegExp(`^root@127\\.0\\.0\\.8:${host.port}: the private key cannot be used`),
    );
  });
});

describe('a host behind a proxy jump', () => {
  it('runs jobs through the bastion, and fails naming it when it is down', async () => {
    const bastion = await sshd('127.0.0.9', [userKey.publicKey]);
    const target = await sshd('127.0.0.10', [userKey.publicKey]);
    const remote = remoteHostFor(target, userKey, projectKey, {
      proxyJump: {
        hostname: bastion.address,
        port: bastion.port,
        user: 'root',
        privateKey: userKey.privateKey,
      },
    });

    const provisioned = await provider.provisionHost(remote, { timeoutMillis: 20_000 });

    expect(provisioned.provisioningData.ssh_proxy).toEqual({
      hostname: '127.0.0.9',
      username: 'root',
      port: bastion.port,
    });
    const agent = provider.agent(provisioned.provisioningData);
    const job = agentJob(['echo "through the bastion"']);
    await agent.submit(job);
    const result = await untilFinished(agent, job.jobSubmissionId);
    expect(text(result.jobLogs)).toBe('through the bastion\n');
    await agent.close?.();

    await bastion.stop();
    started.splice(started.indexOf(bastion), 1);

    await expect(agent.healthcheck()).rejects.toThrow(
      `proxy root@127.0.0.9:${bastion.port}: connection refused`,
    );
  });
});
