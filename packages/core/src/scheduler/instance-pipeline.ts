import type { FleetSpec } from '../domain/fleet.js';
import type { JobProvisioningData, Requirements } from '../domain/resources.js';
import type { RemoteHost } from '../ports/backend-provider.js';
import type { InstanceRecord } from '../records.js';
import { fleetNodes } from '../services/fleet-records.js';
import type { RemoteConnectionInfo } from '../services/fleets.js';
import { collectOffers, projectBackends } from '../services/offers.js';
import type { Claimed, PipelineDefinition } from './pipeline.js';
import { dueByStatus } from './pipeline.js';
import type { SchedulerRuntime } from './runtime.js';
import { errorText } from './runtime.js';

type InstanceItem = Claimed<'instances'>;

/** How long a failing termination is retried before the instance is given up on. */
const terminationRetryMillis = 15 * 60_000;

async function remoteHostOf(rt: SchedulerRuntime, instance: InstanceRecord): Promise<RemoteHost> {
  const { ctx } = rt;
  const info = JSON.parse(ctx.cipher.decrypt(instance.remoteConnectionInfo!)) as
    RemoteConnectionInfo;
  const project = await ctx.store.get('projects', instance.projectId);

  return {
    hostname: info.hostname,
    port: info.port,
    user: info.user,
    privateKey: info.privateKey,
    proxyJump: info.proxyJump,
    internalIp: info.internalIp,
    blocks: info.blocks,
    env: info.env,
    projectPublicKey: project?.sshPublicKey ?? '',
    projectPrivateKey: project?.sshPrivateKey ? ctx.cipher.decrypt(project.sshPrivateKey) : '',
  };
}

/** PENDING SSH host: the SSH provider prepares it; errors are retried until the timeout. */
async function provisionRemote(rt: SchedulerRuntime, item: InstanceItem): Promise<void> {
  const { ctx } = rt;
  const instance = item.row;
  const provider = ctx.providers.get('remote');
  const now = ctx.now();

  if (provider?.provisionHost === undefined) {
    await item.commit({
      status: 'terminated',
      terminationReason: 'error',
      terminationReasonMessage: 'SSH fleets are not supported by this server',
      finishedAt: now,
    });
    return;
  }

  const host = await remoteHostOf(rt, instance);
  const left = instance.createdAt + rt.options.hostProvisioningTimeoutMillis - now;

  try {
    const provisioned = await provider.provisionHost(host, { timeoutMillis: Math.max(1000, left) });
    const data = provisioned.provisioningData;

    await item.commit({
      status: 'idle',
      provisioningData: data,
      instanceType: data.instance_type,
      region: data.region,
      price: data.price,
      totalBlocks: provisioned.totalBlocks,
      startedAt: now,
      terminationReasonMessage: null,
    });
    ctx.logger.info({ instance: instance.name }, 'ssh host provisioned');
  } catch (error) {
    const message = errorText(error);
    ctx.logger.warn({ instance: instance.name, err: message }, 'ssh host provisioning failed');

    if (ctx.now() - instance.createdAt >= rt.options.hostProvisioningTimeoutMillis) {
      await item.commit({
        status: 'terminated',
        terminationReason: 'provisioning_timeout',
        terminationReasonMessage: message,
        finishedAt: ctx.now(),
        deleted: true,
        deletedAt: ctx.now(),
      });
      return;
    }

    await item.commit({ terminationReasonMessage: message });
  }
}

/** PENDING cloud instance of a fleet's `nodes.min`: the cheapest offer that works. */
async function provisionCloud(rt: SchedulerRuntime, item: InstanceItem): Promise<void> {
  const { ctx } = rt;
  const instance = item.row;
  const profile = (instance.profile ?? {}) as {
    requirements?: Requirements;
    backends?: string[] | null;
  };
  const project = await ctx.store.get('projects', instance.projectId);

  if (project === undefined || profile.requirements === undefined) {
    await item.commit({ status: 'terminated', terminationReason: 'error', finishedAt: ctx.now() });
    return;
  }

  const backends = await projectBackends(ctx, project, profile.backends ?? null);
  const { offers } = await collectOffers(backends, profile.requirements, ctx.logger);
  const errors: string[] = [];

  for (const offer of offers.slice(0, rt.options.maxOffersTried)) {
    const backend = backends.find((b) => b.record.type === offer.backend);

    if (backend === undefined || !(await item.held())) {
      continue;
    }

    try {
      const data = await backend.provider.createInstance({
        ...backend.settings,
        offer,
        instanceName: instance.name,
        instanceId: instance.id,
      });
      const committed = await item.commit({
        status: 'provisioning',
        backend: offer.backend,
        region: offer.region,
        price: offer.price,
        instanceType: offer.instance,
        offer,
        provisioningData: data,
        totalBlocks: offer.total_blocks,
        startedAt: ctx.now(),
      });

      if (!committed) {
        await backend.provider.terminateInstance({ ...backend.settings, provisioningData: data })
          .catch(() => undefined);
      }

      return;
    } catch (error) {
      errors.push(errorText(error));
    }
  }

  await item.commit({
    status: 'terminated',
    terminationReason: 'no_offers',
    terminationReasonMessage: errors.slice(0, 3).join('; ') || 'No offers meet the requirements',
    finishedAt: ctx.now(),
    deleted: true,
    deletedAt: ctx.now(),
  });
}

/** PROVISIONING: wait for the agent to answer, then the instance can take jobs. */
async function checkProvisioning(rt: SchedulerRuntime, item: InstanceItem): Promise<void> {
  const { ctx } = rt;
  const instance = item.row;
  const data = instance.provisioningData as JobProvisioningData | null;

  if (data === null) {
    await item.commit({ status: 'terminating', terminationReason: 'error' });
    return;
  }

  try {
    await rt.agents.get(instance.id, data).healthcheck();
    await item.commit({ status: instance.busyBlocks > 0 ? 'busy' : 'idle' });
    ctx.hint?.('jobs');
  } catch (error) {
    const started = instance.startedAt ?? instance.createdAt;

    if (ctx.now() - started > rt.options.provisioningTimeoutMillis) {
      await item.commit({
        status: 'terminating',
        terminationReason: 'provisioning_timeout',
        terminationReasonMessage: errorText(error),
      });
    }
  }
}

/**
 * IDLE: ended after `idle_duration` unless the fleet would drop below `nodes.min`.
 * TODO: idle and busy instances get no health check of their own (unreachable, deadline);
 * a lost instance is noticed only through the jobs on it.
 */
async function checkIdle(rt: SchedulerRuntime, item: InstanceItem): Promise<void> {
  const { ctx } = rt;
  const instance = item.row;

  if (instance.terminationPolicy !== 'destroy-after-idle' || instance.terminationIdleTime < 0 ||
    instance.busyBlocks > 0) {
    return;
  }

  const idleMillis = ctx.now() - (instance.lastJobProcessedAt ?? instance.createdAt);

  if (idleMillis <= instance.terminationIdleTime * 1000) {
    return;
  }

  if (instance.fleetId !== null) {
    const fleet = await ctx.store.get('fleets', instance.fleetId);
    const nodes = fleet === undefined ? null : fleetNodes(fleet.spec as FleetSpec);
    const active = await ctx.store.count('instances', {
      fleetId: instance.fleetId,
      deleted: false,
      status: { in: ['pending', 'provisioning', 'idle', 'busy'] },
    });

    if (nodes !== null && active <= nodes.min) {
      return;
    }
  }

  if (await item.commit({ status: 'terminating', terminationReason: 'idle_timeout' })) {
    ctx.logger.info({ instance: instance.name }, 'idle instance terminating');
    ctx.hint?.('instances');
  }
}

/** TERMINATING: the backend ends the instance (SSH hosts are released), retried for a while. */
async function terminate(rt: SchedulerRuntime, item: InstanceItem): Promise<void> {
  const { ctx } = rt;
  const instance = item.row;
  const now = ctx.now();
  const data = instance.provisioningData as JobProvisioningData | null;
  const ended = {
    status: 'terminated',
    finishedAt: now,
    deleted: true,
    deletedAt: now,
  } as const;

  try {
    if (instance.backend === 'remote') {
      const provider = ctx.providers.get('remote');

      if (provider?.releaseHost && instance.remoteConnectionInfo !== null) {
        await provider.releaseHost(await remoteHostOf(rt, instance));
      }
    } else if (data !== null) {
      const project = await ctx.store.get('projects', instance.projectId);
      const backend = project && (await projectBackends(ctx, project, [data.backend]))[0];

      if (backend !== undefined && backend !== null) {
        await backend.provider.terminateInstance({ ...backend.settings, provisioningData: data });
      }
    }
  } catch (error) {
    const first = instance.firstTerminationRetryAt ?? now;
    // A host never provisioned had at most our key half-installed by a failed attempt: one
    // try to remove it is enough, retrying an unreachable host for minutes helps no one.
    const neverProvisioned = instance.backend === 'remote' && data === null;
    ctx.logger.warn({ instance: instance.name, err: errorText(error), neverProvisioned },
      'termination failed');

    if (!neverProvisioned && now - first < terminationRetryMillis) {
      await item.commit({ firstTerminationRetryAt: first });
      return;
    }

    if (!neverProvisioned) {
      ctx.logger.error({ instance: instance.name },
        'instance could not be terminated; end it manually');
    }
  }

  await rt.agents.drop(instance.id);

  if (await item.commit(ended)) {
    ctx.logger.info({ instance: instance.name }, 'instance terminated');
    ctx.hint?.('fleets');
  }
}

async function processInstance(rt: SchedulerRuntime, item: InstanceItem): Promise<void> {
  const instance = item.row;

  switch (instance.status) {
    case 'pending':
      await (instance.backend === 'remote' ? provisionRemote(rt, item) : provisionCloud(rt, item));
      return;
    case 'provisioning':
      await checkProvisioning(rt, item);
      return;
    case 'idle':
      await checkIdle(rt, item);
      return;
    case 'busy':
      if (instance.busyBlocks === 0) {
        await item.commit({ status: 'idle' });
      }

      return;
    case 'terminating':
      await terminate(rt, item);
      return;
    default:
      return;
  }
}

/** The pipeline of instances being created, checked, idle or terminated. */
export function instancePipeline(rt: SchedulerRuntime): PipelineDefinition<'instances'> {
  const { intervals } = rt.options;

  return {
    name: 'InstancePipeline',
    table: 'instances',
    due: (now) => ({
      ...dueByStatus(now, [
        [['pending', 'provisioning', 'terminating'], intervals.instancesPending],
        [['idle'], intervals.instancesActive],
      ]),
      deleted: false,
    }),
    process: (item) => processInstance(rt, item),
  };
}

/** The pipeline of busy instances: only a guard against a busy instance with no jobs. */
export function busyInstancePipeline(rt: SchedulerRuntime): PipelineDefinition<'instances'> {
  return {
    name: 'BusyInstancePipeline',
    table: 'instances',
    due: (now) => ({
      ...dueByStatus(now, [[['busy'], rt.options.intervals.instancesBusy]]),
      deleted: false,
    }),
    process: (item) => processInstance(rt, item),
  };
}
