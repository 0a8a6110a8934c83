import { generateKeyPairSync } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startScheduler } from '@dstack/core';
import type {
  BackendProvider,
  JobProvisioningData,
  RemoteHost,
  Scheduler,
} from '@dstack/core';
import type { DstackServer } from '../src/index.js';
import { addUser, createTestServer, post } from './helpers.js';

let server: DstackServer;
let scheduler: Scheduler;
const provisioned: RemoteHost[] = [];
const released: string[] = [];
let unreachable = new Set<string>();

function hostData(host: RemoteHost): JobProvisioningData {
  return {
    backend: 'remote', base_backend: null,
    instance_type: { name: 'ssh', resources: { cpus: 4, memory_mib: 8192, gpus: [], spot: false,
      disk: { size_mib: 102400 }, cpu_arch: 'x86', description: '' } },
    instance_id: host.hostname, hostname: host.hostname, internal_ip: host.internalIp,
    public_ip_enabled: true, instance_network: null, region: 'remote',
    availability_zone: null, reservation: null, price: 0, username: host.user,
    ssh_port: host.port, dockerized: true, ssh_proxy: null, backend_data: null, gpu_driver: null,
  };
}

const remote: BackendProvider = {
  type: 'remote',
  capabilities: { images: false, multinode: true },
  async getOffers() { return []; },
  async createInstance() { throw new Error('not used'); },
  async terminateInstance() {},
  agent() { throw new Error('not used'); },
  async provisionHost(host) {
    if (unreachable.has(host.hostname)) {
      throw new Error(`${host.hostname}:${host.port}: connection refused`);
    }

    provisioned.push(host);
    return { provisioningData: hostData(host), totalBlocks: 1 };
  },
  async releaseHost(host) {
    released.push(host.hostname);
  },
};

// A real key: plans and applies refuse one no login could use.
function privateKeyPem(): string {
  return generateKeyPairSync('ed25519', {
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  }).privateKey;
}

const key = privateKeyPem();

function sshFleet(hosts: unknown[]) {
  return {
    plan: {
      spec: {
        configuration: {
          type: 'fleet', name: 'on-prem',
          ssh_config: {
            user: 'dstack',
            ssh_key: { public: 'ssh-ed25519 AAA', private: key },
            hosts,
          },
        },
      },
      current_resource: null,
    },
    force: false,
  };
}

async function fleetWhen(check: (fleet: Record<string, any>) => boolean) {
  const deadline = Date.now() + 10_000;

  for (;;) {
    const fleet = (await post(server, '/api/project/main/fleets/get', server.adminToken,
      { name: 'on-prem' })).json() as Record<string, any>;

    if (check(fleet)) {
      return fleet;
    }

    if (Date.now() > deadline) {
      throw new Error(JSON.stringify(fleet.instances));
    }

    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

beforeEach(async () => {
  provisioned.length = 0;
  released.length = 0;
  unreachable = new Set();
  server = await createTestServer({ providers: [remote] });
  scheduler = startScheduler(server.ctx, {
    maxIdleMillis: 20, intervals: { instancesPending: 20, instancesActive: 20 },
  });
});

afterEach(async () => {
  await scheduler.stop();
  await server.close();
});

describe('SSH fleets', () => {
  it('creates one instance per host, provisions it and never shows a private key', async () => {
    const applied = await post(server, '/api/project/main/fleets/apply', server.adminToken,
      sshFleet(['10.0.0.1', { hostname: '10.0.0.2', port: 2222 }]));
    expect(applied.statusCode, applied.body).toBe(200);
    const fleet = applied.json() as Record<string, any>;

    expect(fleet.instances.map((i: Record<string, any>) => [i.name, i.status, i.backend])).toEqual([
      ['on-prem-0', 'pending', 'remote'], ['on-prem-1', 'pending', 'remote'],
    ]);
    expect(fleet.spec.configuration.ssh_config.ssh_key).toBeNull();
    expect(applied.body).not.toContain('OPENSSH PRIVATE KEY');

    const stored = await server.ctx.store.find('instances', { where: { fleetId: fleet.id } });
    expect(stored.every((i) => i.remoteConnectionInfo !== null)).toBe(true);

    const ready = await fleetWhen((f) => f.instances.every((i: any) => i.status === 'idle'));
    expect(ready.instances.map((i: any) => i.hostname)).toEqual(['10.0.0.1', '10.0.0.2']);
    expect(provisioned.map((host) => [host.hostname, host.port, host.user, host.privateKey]))
      .toEqual(expect.arrayContaining([
        ['10.0.0.1', 22, 'dstack', key], ['10.0.0.2', 2222, 'dstack', key],
      ]));
  });

  it('on re-apply adds new hosts and releases removed ones, leaving the rest alone', async () => {
    await post(server, '/api/project/main/fleets/apply', server.adminToken,
      sshFleet(['10.0.0.1', '10.0.0.2']));
    await fleetWhen((f) => f.instances.every((i: any) => i.status === 'idle'));
    const before = (await post(server, '/api/project/main/fleets/get', server.adminToken,
      { name: 'on-prem' })).json() as Record<string, any>;

    const again = await post(server, '/api/project/main/fleets/apply', server.adminToken,
      sshFleet(['10.0.0.1', '10.0.0.3']));
    expect(again.statusCode, again.body).toBe(200);
    const after = await fleetWhen((f) =>
      f.instances.length === 2 && f.instances.every((i: any) => i.status === 'idle'));

    expect(after.instances.map((i: any) => i.hostname).sort()).toEqual(['10.0.0.1', '10.0.0.3']);
    expect(after.instances.find((i: any) => i.hostname === '10.0.0.1').id)
      .toBe(before.instances.find((i: any) => i.hostname === '10.0.0.1').id);
    expect(released).toEqual(['10.0.0.2']);
  });

  it('stores no private key in the fleet spec and re-applies the same spec', async () => {
    const jumpKey = privateKeyPem();
    const hostKeyPem = privateKeyPem();
    const body = sshFleet([{
      hostname: '10.0.0.1', ssh_key: { public: 'ssh-ed25519 H', private: hostKeyPem },
      proxy_jump: {
        hostname: '10.0.0.9', user: 'j', identity_file: 'j.pem',
        ssh_key: { public: 'p', private: jumpKey },
      },
    }]);
    const first = await post(server, '/api/project/main/fleets/apply', server.adminToken, body);
    expect(first.statusCode, first.body).toBe(200);

    const [row] = await server.ctx.store.find('fleets', { where: { name: 'on-prem' } });
    const stored = JSON.stringify(row!.spec);
    expect(stored).not.toContain('PRIVATE KEY');
    expect((row!.spec as any).configuration.ssh_config.hosts[0].hostname).toBe('10.0.0.1');

    const [instance] = await server.ctx.store.find('instances', { where: { fleetId: row!.id } });
    const info = JSON.parse(server.ctx.cipher.decrypt(instance!.remoteConnectionInfo!));
    expect([info.privateKey, info.proxyJump.privateKey]).toEqual([hostKeyPem, jumpKey]);

    const plan = await post(server, '/api/project/main/fleets/get_plan', server.adminToken,
      { spec: body.plan.spec });
    expect(plan.statusCode, plan.body).toBe(200);
    expect(plan.json().action).toBe('update');
    expect(plan.json().current_resource.id).toBe(first.json().id);
    expect(plan.json().current_resource.spec.configuration.ssh_config.hosts[0].ssh_key)
      .toBeNull();

    const again = await post(server, '/api/project/main/fleets/apply', server.adminToken, {
      plan: { spec: body.plan.spec, current_resource: plan.json().current_resource },
      force: false,
    });
    expect(again.statusCode, again.body).toBe(200);
    expect(again.json().instances.map((i: any) => i.id)).toEqual([instance!.id]);
  });

  it('gives hosts without their own blocks the fleet-level blocks', async () => {
    const body = sshFleet(['10.0.0.1', { hostname: '10.0.0.2', blocks: 2 }]);
    (body.plan.spec.configuration as Record<string, unknown>).blocks = 4;
    const applied = await post(server, '/api/project/main/fleets/apply', server.adminToken, body);
    expect(applied.statusCode, applied.body).toBe(200);

    await fleetWhen((f) => f.instances.every((i: any) => i.status === 'idle'));
    expect(provisioned.map((host) => [host.hostname, host.blocks]).sort())
      .toEqual([['10.0.0.1', 4], ['10.0.0.2', 2]]);
  });

  it('sends profile fleet references as strings to clients older than 0.20.14', async () => {
    const spec = {
      configuration: { type: 'fleet', name: 'cloud', nodes: '0..1' },
      profile: { fleets: [{ project: 'main', name: 'other' }] },
    };
    const as = (version: string | null, url: string, body: object) => server.inject({
      method: 'POST', url, payload: body,
      headers: {
        authorization: `Bearer ${server.adminToken}`,
        ...(version === null ? {} : { 'x-api-version': version }),
      },
    });
    const applied = await as('0.20.10', '/api/project/main/fleets/apply',
      { plan: { spec, current_resource: null }, force: false });
    expect(applied.statusCode, applied.body).toBe(200);
    expect(applied.json().spec.profile.fleets).toEqual(['main/other']);

    const fleetsOf = async (version: string | null) => {
      const got = await as(version, '/api/project/main/fleets/get', { name: 'cloud' });
      const plan = await as(version, '/api/project/main/fleets/get_plan', { spec });
      const listed = await as(version, '/api/project/main/fleets/list', {});
      return [
        got.json().spec.profile.fleets,
        plan.json().current_resource.spec.profile.fleets,
        plan.json().effective_spec.profile.fleets,
        listed.json()[0].spec.profile.fleets,
      ];
    };

    expect(await fleetsOf('0.20.13')).toEqual(Array(4).fill(['main/other']));
    expect(await fleetsOf('0.20.14')).toEqual(Array(4).fill([{ project: 'main', name: 'other' }]));
    expect(await fleetsOf(null)).toEqual(Array(4).fill([{ project: 'main', name: 'other' }]));
  });

  it('reports an unreachable host on the instance and gives up after the timeout', async () => {
    await scheduler.stop();
    scheduler = startScheduler(server.ctx, {
      maxIdleMillis: 20, hostProvisioningTimeoutMillis: 500,
      intervals: { instancesPending: 20, instancesActive: 20, fleets: 20 },
    });
    unreachable.add('10.9.9.9');
    await post(server, '/api/project/main/fleets/apply', server.adminToken, sshFleet(['10.9.9.9']));
    const project = await server.ctx.store.findOne('projects', { where: { name: 'main' } });
    const failed = await (async () => {
      const deadline = Date.now() + 10_000;

      for (;;) {
        const [instance] = await server.ctx.store.find('instances', {
          where: { projectId: project!.id },
        });

        if (instance?.status === 'terminated' || Date.now() > deadline) {
          return instance!;
        }

        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    })();

    expect(failed.status).toBe('terminated');
    expect(failed.terminationReason).toBe('provisioning_timeout');
    expect(failed.terminationReasonMessage).toMatch(/10\.9\.9\.9:22: connection refused/);

    // With its only host gone the SSH fleet is empty, and an empty SSH fleet is deleted.
    const deadline = Date.now() + 10_000;
    let row = await server.ctx.store.findOne('fleets', { where: { name: 'on-prem' } });

    while (row?.deleted === false && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 25));
      row = await server.ctx.store.findOne('fleets', { where: { name: 'on-prem' } });
    }

    expect([row?.status, row?.deleted]).toEqual(['terminated', true]);
    const got = await post(server, '/api/project/main/fleets/get', server.adminToken,
      { name: 'on-prem' });
    expect(got.json().detail[0].code).toBe('resource_not_exists');
  });

  it('refuses SSH fleets to non-admins when the server forbids it', async () => {
    await server.close();
    server = await createTestServer({
      providers: [remote],
      permissions: { allowNonAdminsManageSshFleets: false },
    });
    const user = await addUser(server, 'someone');
    await post(server, '/api/projects/main/add_members', server.adminToken,
      { members: [{ username: 'someone', project_role: 'user' }] });
    const denied = await post(server, '/api/project/main/fleets/apply', user,
      sshFleet(['10.0.0.1']));

    expect(denied.statusCode).toBe(403);
    expect(denied.json()).toEqual({ msg: 'Access denied', code: null });
  });
});
