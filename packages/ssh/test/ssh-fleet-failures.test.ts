/**
 * The scheduler's side of bad hosts: one host with nothing listening and one that refuses
 * the key end as instances whose message names the host and the cause, in bounded time.
 */
import {
  applyFleetPlan,
  deleteFleets,
  getOrCreateAdminUser,
  getOrCreateProject,
  startScheduler,
} from '@dstack/core';
import type { CoreContext, FleetSpec, Scheduler } from '@dstack/core';
import { afterAll, expect, it } from 'vitest';
import { createSshBackendProvider } from '../src/index.js';
import type { SshBackendProvider } from '../src/index.js';
import { schedulerContext } from './helpers.js';
import { freePort, generateKeyPair, startSshd } from './sshd-harness.js';
import type { SshdHost } from './sshd-harness.js';

let ctx: CoreContext | undefined;
let provider: SshBackendProvider | undefined;
let scheduler: Scheduler | undefined;
let host: SshdHost | undefined;

afterAll(async () => {
  await scheduler?.stop();
  await provider?.close();
  await host?.stop();
  await ctx?.store.close();
});

it('ends a down host and a wrong-key host with messages naming them, in time', async () => {
  const userKey = generateKeyPair('user@laptop');
  const otherKey = generateKeyPair('someone-else');
  host = await startSshd({ address: '127.0.0.14', authorizedKeys: [otherKey.publicKey] });
  const downPort = await freePort('127.0.0.15');
  provider = createSshBackendProvider({ connectTimeoutMillis: 1000 });
  ctx = schedulerContext(new Map([['remote', provider]]));
  const user = (await getOrCreateAdminUser(ctx)).user;
  const project = (await getOrCreateProject(ctx, user, 'main')).project;
  const configuration = {
    type: 'fleet',
    name: 'bad-hosts',
    ssh_config: {
      user: 'root',
      ssh_key: { public: userKey.publicKey, private: userKey.privateKey },
      hosts: [
        { hostname: '127.0.0.14', port: host.port },
        { hostname: '127.0.0.15', port: downPort },
      ],
    },
  };
  const started = Date.now();
  await applyFleetPlan(ctx, { project, user }, {
    spec: { configuration, configuration_path: null, profile: {}, autocreated: false } as
      unknown as FleetSpec,
    currentResource: null,
    force: false,
  });
  scheduler = startScheduler(ctx, {
    intervals: { instancesPending: 200 },
    hostProvisioningTimeoutMillis: 3000,
  });

  let rows = await ctx.store.find('instances', { where: { fleetId: { isNull: false } } });
  const deadline = Date.now() + 15_000;
  while (rows.some((row) => row.status !== 'terminated') && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    rows = await ctx.store.find('instances', { where: { fleetId: { isNull: false } } });
  }

  const messages = rows.map((row) => [
    row.status,
    row.terminationReason,
    row.terminationReasonMessage,
  ]);
  expect(messages.sort()).toEqual([
    [
      'terminated',
      'provisioning_timeout',
      `root@127.0.0.14:${host.port}: authentication failed: ` +
        'the host did not accept the private key (publickey only)',
    ],
    [
      'terminated',
      'provisioning_timeout',
      `root@127.0.0.15:${downPort}: connection refused (nothing listens on port ${downPort})`,
    ],
  ]);
  expect(Date.now() - started).toBeLessThan(8000);
});

it('deletes a fleet whose host never came up at once, without release retries', async () => {
  const userKey = generateKeyPair('user@laptop');
  const downPort = await freePort('127.0.0.16');
  const downProvider = createSshBackendProvider({ connectTimeoutMillis: 1000 });
  const local = schedulerContext(new Map([['remote', downProvider]]));
  const user = (await getOrCreateAdminUser(local)).user;
  const project = (await getOrCreateProject(local, user, 'main')).project;
  const configuration = {
    type: 'fleet',
    name: 'never-up',
    ssh_config: {
      user: 'root',
      ssh_key: { public: userKey.publicKey, private: userKey.privateKey },
      hosts: [{ hostname: '127.0.0.16', port: downPort }],
    },
  };
  await applyFleetPlan(local, { project, user }, {
    spec: { configuration, configuration_path: null, profile: {}, autocreated: false } as
      unknown as FleetSpec,
    currentResource: null,
    force: false,
  });
  const running = startScheduler(local, {
    intervals: { instancesPending: 200, fleets: 200 },
    hostProvisioningTimeoutMillis: 10 * 60_000,
  });

  try {
    const instance = async () => (await local.store.find('instances', {}))[0]!;
    const waitFor = async (done: () => Promise<boolean>, millis: number) => {
      const deadline = Date.now() + millis;

      while (!(await done()) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    };

    // A failed attempt first, so the host is known to be down when the fleet goes.
    await waitFor(async () => (await instance()).terminationReasonMessage !== null, 15_000);
    expect((await instance()).status).toBe('pending');
    await deleteFleets(local, project, ['never-up']);
    await waitFor(async () => (await instance()).status === 'terminated', 15_000);
    const fleets = await local.store.find('fleets', {});
    await waitFor(async () => (await local.store.get('fleets', fleets[0]!.id))!.deleted, 15_000);

    expect((await instance()).status).toBe('terminated');
    expect((await instance()).firstTerminationRetryAt).toBeNull();
    expect((await local.store.get('fleets', fleets[0]!.id))!.deleted).toBe(true);
  } finally {
    await running.stop();
    await downProvider.close();
    await local.store.close();
  }
}, 60_000);
