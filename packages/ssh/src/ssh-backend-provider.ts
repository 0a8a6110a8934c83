import { ServerClientError, silentLogger } from '@dstack/core';
import type {
  BackendProvider,
  InstanceAgent,
  JobProvisioningData,
  ProvisionedHost,
  RemoteHost,
} from '@dstack/core';
import type { ResolvedSshOptions, SshBackendProviderOptions, SshHostKeys } from './config.js';
import { createConnectionPool } from './connection-pool.js';
import { provisionedHostKey, provisionHost, releaseHost } from './provision-host.js';
import { endpointLabel, openSshConnection } from './ssh-connection.js';
import type { SshConnection, SshEndpoint } from './ssh-connection.js';
import { SshHostError } from './ssh-host-error.js';
import { createSshInstanceAgent } from './ssh-instance-agent.js';

/** The `remote` BackendProvider, with both SSH-fleet members present and a `close`. */
export interface SshBackendProvider extends BackendProvider {
  provisionHost(host: RemoteHost, options: { timeoutMillis: number }): Promise<ProvisionedHost>;
  releaseHost(host: RemoteHost, options?: { timeoutMillis: number }): Promise<void>;
  /** Closes every pooled SSH connection; jobs on the hosts keep running. */
  close(): Promise<void>;
}

const defaultReleaseTimeoutMillis = 60_000;

function resolveOptions(options: SshBackendProviderOptions): ResolvedSshOptions {
  return {
    logger: options.logger ?? silentLogger,
    resolveKeys: options.resolveKeys ?? null,
    connectTimeoutMillis: options.connectTimeoutMillis ?? 10_000,
    commandTimeoutMillis: options.commandTimeoutMillis ?? 30_000,
    idleConnectionMillis: options.idleConnectionMillis ?? 120_000,
    stopGraceSeconds: options.stopGraceSeconds ?? 10,
    pullMaxBytes: options.pullMaxBytes ?? 1024 * 1024,
  };
}

function hostKey(user: string, hostname: string, port: number): string {
  return `${user}@${hostname}:${port}`;
}

function provisioningTarget(data: JobProvisioningData): { key: string; label: string } {
  if (data.hostname === null) {
    throw new Error(`instance ${data.instance_id} has no hostname`);
  }

  const key = hostKey(data.username, data.hostname, data.ssh_port ?? 22);
  const proxy = data.ssh_proxy;

  return { key, label: proxy ? `${key} (via ${proxy.username}@${proxy.hostname})` : key };
}

/**
 * Creates the provider of SSH fleets (backend type `remote`): it never offers or creates
 * instances; it provisions hosts the user owns and runs jobs on them through a small agent.
 */
export function createSshBackendProvider(
  input: SshBackendProviderOptions = {},
): SshBackendProvider {
  const options = resolveOptions(input);
  const logger = options.logger.child({ backend: 'remote' });
  const pool = createConnectionPool({ idleMillis: options.idleConnectionMillis });
  const knownKeys = new Map<string, SshHostKeys>();
  const context = {
    logger,
    connectTimeoutMillis: options.connectTimeoutMillis,
    commandTimeoutMillis: options.commandTimeoutMillis,
  };

  const keysFor = async (data: JobProvisioningData, key: string): Promise<SshHostKeys> => {
    const known = knownKeys.get(key);
    if (known !== undefined) {
      return known;
    }

    const resolved = options.resolveKeys ? await options.resolveKeys(data) : null;
    if (resolved === null) {
      throw new SshHostError(key, 'bad_key', 'no project key is known for this host');
    }

    knownKeys.set(key, resolved);

    return resolved;
  };

  const openFor = async (data: JobProvisioningData, key: string): Promise<SshConnection> => {
    const keys = await keysFor(data, key);
    const target: SshEndpoint = {
      hostname: data.hostname ?? '',
      port: data.ssh_port ?? 22,
      user: data.username,
      privateKey: keys.privateKey,
    };
    const proxy = data.ssh_proxy;
    let proxyJump: SshEndpoint | null = null;
    if (proxy !== null) {
      if (keys.proxyPrivateKey === null) {
        const label = endpointLabel(target, null);
        throw new SshHostError(label, 'bad_key', 'no key is known for the proxy jump');
      }

      proxyJump = {
        hostname: proxy.hostname,
        port: proxy.port,
        user: proxy.username,
        privateKey: keys.proxyPrivateKey,
      };
    }

    return openSshConnection(target, {
      proxyJump,
      connectTimeoutMillis: options.connectTimeoutMillis,
      expectedHostKey: provisionedHostKey(data.backend_data),
    });
  };

  return {
    type: 'remote',
    capabilities: { images: false, multinode: true, sharedHostPorts: true },

    async checkConfig() {
      // SSH hosts come from fleets; a project never configures a `remote` backend.
      throw new ServerClientError(
        'The remote backend cannot be configured: add on-prem hosts with an SSH fleet ' +
          '(a fleet configuration with ssh_config)',
        'error',
        [['type']],
      );
    },

    async getOffers() {
      return [];
    },

    async createInstance() {
      throw new Error('the remote backend does not create instances: add hosts to an SSH fleet');
    },

    async terminateInstance(request) {
      // The host stays as it is (releaseHost undoes provisioning); only the connection goes.
      const { key } = provisioningTarget(request.provisioningData);
      pool.drop(key);
    },

    agent(provisioningData: JobProvisioningData): InstanceAgent {
      const { key, label } = provisioningTarget(provisioningData);

      return createSshInstanceAgent({
        connection: () => pool.get(key, () => openFor(provisioningData, key)),
        release: () => pool.drop(key),
        commandTimeoutMillis: options.commandTimeoutMillis,
        pullMaxBytes: options.pullMaxBytes,
        stopGraceSeconds: options.stopGraceSeconds,
        logger: logger.child({ host: label }),
      });
    },

    async provisionHost(host, { timeoutMillis }) {
      const { provisioned, connection } = await provisionHost(host, timeoutMillis, context);
      const key = hostKey(host.user, host.hostname, host.port);
      knownKeys.set(key, {
        privateKey: host.projectPrivateKey,
        proxyPrivateKey: host.proxyJump?.privateKey ?? null,
      });
      pool.drop(key);
      await pool.get(key, async () => connection);

      return provisioned;
    },

    async releaseHost(host, releaseOptions) {
      const key = hostKey(host.user, host.hostname, host.port);
      pool.drop(key);
      knownKeys.delete(key);
      const timeoutMillis = releaseOptions?.timeoutMillis ?? defaultReleaseTimeoutMillis;
      await releaseHost(host, timeoutMillis, context);
    },

    async close() {
      pool.closeAll();
    },
  };
}
