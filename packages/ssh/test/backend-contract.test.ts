import { resourcesMismatch } from '@dstack/core';
import type { BackendProvider, InstanceOffer, ProvisionedHost } from '@dstack/core';
import { runBackendProviderContract } from '@dstack/core/testing';
import { createSshBackendProvider } from '../src/index.js';
import type { SshBackendProvider } from '../src/index.js';
import { remoteHostFor } from './helpers.js';
import { generateKeyPair, startSshd } from './sshd-harness.js';
import type { SshdHost } from './sshd-harness.js';

let host: SshdHost | undefined;
let provider: SshBackendProvider | undefined;

/**
 * The contract drives offers and instance creation, which SSH fleets do not have: a host is
 * provisioned, not created. This test-only view offers the provisioned loopback host the way
 * the scheduler offers an idle fleet instance, so everything else (agent, logs, cursor,
 * stop, a new agent carrying on) runs against the real provider and a real sshd.
 */
function asCreatingProvider(
  ssh: SshBackendProvider,
  provisioned: ProvisionedHost,
): BackendProvider {
  const data = provisioned.provisioningData;
  const offer: InstanceOffer = {
    backend: ssh.type,
    instance: data.instance_type,
    region: data.region,
    price: data.price,
    backend_data: {},
    availability: 'idle',
    availability_zones: null,
    instance_runtime: 'runner',
    blocks: provisioned.totalBlocks,
    total_blocks: provisioned.totalBlocks,
  };

  return {
    type: ssh.type,
    capabilities: ssh.capabilities,
    getOffers: async (request) =>
      resourcesMismatch(offer.instance.resources, request.requirements) === null ? [offer] : [],
    createInstance: async () => data,
    terminateInstance: (request) => ssh.terminateInstance(request),
    agent: (pd) => ssh.agent(pd),
  };
}

runBackendProviderContract(
  'remote (an SSH host on loopback)',
  async () => {
    const userKey = generateKeyPair('user@laptop');
    const projectKey = generateKeyPair('dstack-project');
    host = await startSshd({ address: '127.0.0.11', authorizedKeys: [userKey.publicKey] });
    provider = createSshBackendProvider({ pullMaxBytes: 16 * 1024 });
    const remote = remoteHostFor(host, userKey, projectKey);
    const provisioned = await provider.provisionHost(remote, { timeoutMillis: 20_000 });

    return asCreatingProvider(provider, provisioned);
  },
  {
    repos: true,
    metrics: true,
    cleanup: async () => {
      await provider?.close();
      await host?.stop();
    },
  },
);
