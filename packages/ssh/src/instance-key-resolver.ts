import type { Cipher, JobProvisioningData, StateAccess } from '@dstack/core';
import type { SshHostKeys } from './config.js';

/** The part of an instance's encrypted `remoteConnectionInfo` the resolver reads. */
interface StoredConnectionInfo {
  proxyJump: { privateKey: string } | null;
}

export interface InstanceKeyResolverOptions {
  store: Pick<StateAccess, 'find' | 'get'>;
  cipher: Cipher;
}

/**
 * A `resolveKeys` for `createSshBackendProvider` that reads the keys from the state store:
 * the project key of the active remote instance on that host, and its fleet's proxy key.
 */
export function createInstanceKeyResolver(
  options: InstanceKeyResolverOptions,
): (provisioningData: JobProvisioningData) => Promise<SshHostKeys | null> {
  return async (data) => {
    const instances = await options.store.find('instances', {
      where: { backend: 'remote', deleted: false },
      orderBy: [['createdAt', 'desc']],
    });
    const instance = instances.find((row) => {
      const stored = row.provisioningData as JobProvisioningData | null;

      return (
        stored !== null &&
        stored.hostname === data.hostname &&
        stored.ssh_port === data.ssh_port &&
        stored.username === data.username
      );
    });
    if (instance === undefined) {
      return null;
    }

    const project = await options.store.get('projects', instance.projectId);
    if (project?.sshPrivateKey == null) {
      return null;
    }

    const info = instance.remoteConnectionInfo === null
      ? null
      : (JSON.parse(options.cipher.decrypt(instance.remoteConnectionInfo)) as StoredConnectionInfo);

    return {
      privateKey: options.cipher.decrypt(project.sshPrivateKey),
      proxyPrivateKey: info?.proxyJump?.privateKey ?? null,
    };
  };
}
