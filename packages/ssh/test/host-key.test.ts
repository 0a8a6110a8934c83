import { afterAll, expect, it } from 'vitest';
import { createSshBackendProvider, SshHostError } from '../src/index.js';
import { agentJob, remoteHostFor, text, untilFinished } from './helpers.js';
import { generateKeyPair, startSshd } from './sshd-harness.js';
import type { SshdHost } from './sshd-harness.js';

const userKey = generateKeyPair('user@laptop');
const projectKey = generateKeyPair('dstack-project');
const keys = async () => ({ privateKey: projectKey.privateKey, proxyPrivateKey: null });
const first = createSshBackendProvider();
const second = createSshBackendProvider({ resolveKeys: keys });
let host: SshdHost | undefined;

afterAll(async () => {
  await first.close();
  await second.close();
  await host?.stop();
});

it('pins the host key seen at provisioning and refuses a host whose key changed', async () => {
  host = await startSshd({ address: '127.0.0.19', authorizedKeys: [userKey.publicKey] });
  const remote = remoteHostFor(host, userKey, projectKey);
  const { provisioningData } = await first.provisionHost(remote, { timeoutMillis: 20_000 });
  const pinned = JSON.parse(provisioningData.backend_data ?? '{}') as { host_key: string };
  expect(pinned.host_key).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);

  const agent = second.agent(provisioningData);
  const job = agentJob(['echo same host']);
  await agent.submit(job);
  expect(text((await untilFinished(agent, job.jobSubmissionId)).jobLogs)).toBe('same host\n');
  await agent.close?.();

  await host.replaceHostKey();

  const error = await agent.healthcheck().catch((caught: unknown) => caught);
  expect(error).toBeInstanceOf(SshHostError);
  expect((error as SshHostError).reason).toBe('host_key_changed');
  expect((error as SshHostError).message).toMatch(
    new RegExp(
      `^root@127\\.0\\.0\\.19:${host.port}: the host key changed since provisioning ` +
        `\\(SHA256:\\S+, expected ${pinned.host_key.replace(/[+/]/g, '\\$&')}\\)`,
    ),
  );
});
