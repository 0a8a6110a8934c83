import { randomBytes, randomUUID } from 'node:crypto';
import { createCipher, createMemoryStateStore } from '@dstack/core';
import type { InstanceRecord, JobProvisioningData, ProjectRecord, StateStore } from '@dstack/core';
import { afterEach, describe, expect, it } from 'vitest';
import { createInstanceKeyResolver } from '../src/index.js';

const cipher = createCipher([
  { type: 'aes', name: 'key1', secret: randomBytes(32).toString('base64') },
]);
let store: StateStore | undefined;

afterEach(async () => {
  await store?.close();
});

function provisioningData(hostname: string, port: number): JobProvisioningData {
  return {
    backend: 'remote',
    base_backend: null,
    instance_type: {
      name: 'ssh',
      resources: {
        cpus: 2,
        memory_mib: 1024,
        gpus: [],
        spot: false,
        disk: { size_mib: 1024 },
        cpu_arch: 'x86',
        description: '',
      },
    },
    instance_id: `root@${hostname}:${port}`,
    hostname,
    internal_ip: hostname,
    public_ip_enabled: true,
    instance_network: null,
    region: 'remote',
    availability_zone: null,
    reservation: null,
    price: 0,
    username: 'root',
    ssh_port: port,
    dockerized: false,
    ssh_proxy: null,
    backend_data: null,
    gpu_driver: null,
  };
}

function project(name: string, privateKey: string): ProjectRecord {
  return {
    id: randomUUID(),
    name,
    createdAt: 1,
    ownerId: randomUUID(),
    isPublic: false,
    templatesRepo: null,
    deleted: false,
    originalName: null,
    sshPublicKey: `ssh-ed25519 AAAA${name}`,
    sshPrivateKey: cipher.encrypt(privateKey),
  };
}

function instance(
  projectId: string,
  data: JobProvisioningData,
  proxyKey: string | null,
  deleted = false,
): InstanceRecord {
  const info = { proxyJump: proxyKey === null ? null : { privateKey: proxyKey } };

  return {
    id: randomUUID(),
    projectId,
    fleetId: null,
    name: `fleet-${data.ssh_port}`,
    instanceNum: 0,
    createdAt: 1,
    lastProcessedAt: 1,
    deleted,
    deletedAt: null,
    status: deleted ? 'terminated' : 'idle',
    unreachable: false,
    startedAt: null,
    finishedAt: null,
    backend: 'remote',
    region: 'remote',
    availabilityZone: null,
    price: 0,
    instanceType: data.instance_type,
    offer: null,
    provisioningData: data,
    remoteConnectionInfo: cipher.encrypt(JSON.stringify(info)),
    profile: null,
    totalBlocks: 2,
    busyBlocks: 0,
    terminationPolicy: 'dont-destroy',
    terminationIdleTime: -1,
    terminationDeadline: null,
    terminationReason: null,
    terminationReasonMessage: null,
    lastJobProcessedAt: null,
    provisioningJobId: null,
    health: 'healthy',
    firstTerminationRetryAt: null,
    lockToken: null,
    lockOwner: null,
    lockExpiresAt: null,
  };
}

describe('createInstanceKeyResolver', () => {
  it('finds the project key and proxy key of the active instance on that host', async () => {
    store = createMemoryStateStore();
    const main = project('main', 'MAIN-PRIVATE');
    const other = project('other', 'OTHER-PRIVATE');
    await store.insert('projects', [main, other]);
    await store.insert('instances', [
      instance(other.id, provisioningData('127.0.0.2', 2222), null, true),
      instance(main.id, provisioningData('127.0.0.2', 2222), 'PROXY-PRIVATE'),
      instance(other.id, provisioningData('127.0.0.2', 2223), null),
    ]);
    const resolve = createInstanceKeyResolver({ store, cipher });

    expect(await resolve(provisioningData('127.0.0.2', 2222))).toEqual({
      privateKey: 'MAIN-PRIVATE',
      proxyPrivateKey: 'PROXY-PRIVATE',
    });
    expect(await resolve(provisioningData('127.0.0.2', 2223))).toEqual({
      privateKey: 'OTHER-PRIVATE',
      proxyPrivateKey: null,
    });
    expect(await resolve(provisioningData('127.0.0.3', 2222))).toBeNull();
  });
});
