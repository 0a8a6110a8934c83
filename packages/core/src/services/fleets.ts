import { isUsableSshPrivateKey } from '../configurations/ssh-private-key.js';
import type { CoreContext } from '../context.js';
import type { Fleet, FleetSpec } from '../domain/fleet.js';
import { fleetToWire, redactFleetSpec } from '../domain/fleet.js';
import type { InstanceOffer, Requirements, ResourcesSpec } from '../domain/resources.js';
import { isRunFinished } from '../domain/run.js';
import { ResourceNotExistsError, ServerClientError } from '../errors/server-errors.js';
import type { StateAccess } from '../ports/state-store.js';
import type { FleetRecord, InstanceRecord, ProjectRecord, UserRecord } from '../records.js';
import { newId } from '../util/ids.js';
import {
  fleetIdleDefaultSeconds,
  fleetIdleSeconds,
  fleetNodes,
  freeInstanceNums,
  isSshFleet,
  newInstanceRecord,
} from './fleet-records.js';
import { eventTarget, recordEvent } from './events.js';
import { collectOffers, projectBackends } from './offers.js';
import { resourceNamePattern } from './run-names.js';

/** Who applies: the project and the user, already checked by the route guard. */
export interface ProjectActor {
  project: ProjectRecord;
  user: UserRecord;
}

/** The wire `FleetPlan`. */
export interface FleetPlan {
  project_name: string;
  user: string;
  spec: FleetSpec;
  effective_spec: FleetSpec;
  current_resource: Fleet | null;
  offers: InstanceOffer[];
  total_offers: number;
  max_offer_price: number | null;
  action: 'create' | 'update';
}

/** The default resources a fleet without `resources` asks of an offer. */
const anyResources: ResourcesSpec = {
  cpu: { arch: null, count: { min: 1, max: null } },
  memory: { min: 0, max: null },
  shm_size: null,
  gpu: {
    vendor: null,
    name: null,
    count: { min: 0, max: null },
    memory: null,
    total_memory: null,
    compute_capability: null,
  },
  disk: { size: { min: 0, max: null } },
};

/** Requirements an instance of a cloud fleet has to meet. */
export function fleetRequirements(spec: FleetSpec): Requirements {
  const configuration = spec.configuration;
  const spotPolicy = configuration.spot_policy ?? spec.profile?.spot_policy ?? null;

  return {
    resources: (configuration.resources as ResourcesSpec | null | undefined) ?? anyResources,
    max_price: (configuration.max_price as number | null | undefined) ?? null,
    spot: spotPolicy === 'spot' ? true : spotPolicy === 'auto' ? null : false,
    reservation: (configuration.reservation as string | null | undefined) ?? null,
    multinode: configuration.placement === 'cluster',
  };
}

/** The backend types a fleet may use; null means any of the project's. */
export function fleetBackendTypes(spec: FleetSpec): string[] | null {
  const backends = spec.configuration.backends ?? spec.profile?.backends;
  return Array.isArray(backends) && backends.length > 0 ? backends.map(String) : null;
}

async function fleetInstances(access: StateAccess, fleetId: string): Promise<InstanceRecord[]> {
  return access.find('instances', { where: { fleetId }, orderBy: [['instanceNum', 'asc']] });
}

/** Serializes a fleet row with its instances. */
export async function loadFleetWire(
  access: StateAccess,
  fleet: FleetRecord,
  projectName: string,
): Promise<Fleet> {
  return fleetToWire(fleet, projectName, await fleetInstances(access, fleet.id));
}

async function activeFleetByName(
  access: StateAccess,
  projectId: string,
  name: string,
): Promise<FleetRecord | undefined> {
  return access.findOne('fleets', { where: { projectId, name, deleted: false } });
}

/** Checks the spec's name and the cloud/SSH rules that apply before anything is stored. */
function validateFleetSpec(spec: FleetSpec): void {
  const name = spec.configuration.name;

  if (typeof name === 'string' && !resourceNamePattern.test(name)) {
    throw new ServerClientError(
      'Resource name should match regex \'^[a-z][a-z0-9-]{1,40}$\'',
      'error',
      [['configuration', 'name']],
    );
  }

  if (!isSshFleet(spec) && fleetNodes(spec) === null) {
    throw new ServerClientError('Either nodes or ssh_config must be specified');
  }

  if (isSshFleet(spec)) {
    checkSshKeys(spec);
  }
}

// As the original does, refuse at once a fleet-wide or host key no login could use.
function checkSshKeys(spec: FleetSpec): void {
  const ssh = spec.configuration.ssh_config as { ssh_key?: unknown; hosts?: unknown[] };
  const keys: [unknown, string[]][] = [[ssh.ssh_key, ['configuration', 'ssh_config', 'ssh_key']]];

  (ssh.hosts ?? []).forEach((host, index) => {
    if (typeof host === 'object' && host !== null) {
      const path = ['configuration', 'ssh_config', 'hosts', String(index), 'ssh_key'];
      keys.push([(host as { ssh_key?: unknown }).ssh_key, path]);
    }
  });

  for (const [key, path] of keys) {
    if (typeof key !== 'object' || key === null) {
      continue;
    }

    const privateKey = (key as { private?: unknown }).private;

    if (typeof privateKey !== 'string') {
      throw new ServerClientError('Private key not provided', 'error', [[...path, 'private']]);
    }

    if (!isUsableSshPrivateKey(privateKey)) {
      throw new ServerClientError(
        'Unsupported key type. The key type should be RSA, ECDSA, or Ed25519 and should not ' +
          'be encrypted with passphrase.',
        'error',
        [[...path, 'private']],
      );
    }
  }
}

/** Plans a fleet: what would change and which offers fit. */
export async function getFleetPlan(
  ctx: CoreContext,
  actor: ProjectActor,
  spec: FleetSpec,
): Promise<FleetPlan> {
  validateFleetSpec(spec);

  const name = spec.configuration.name as string | null | undefined;
  const current = name ? await activeFleetByName(ctx.store, actor.project.id, name) : undefined;
  let offers: InstanceOffer[] = [];

  await checkSshHostsNotYetAdded(ctx, ctx.store, spec, current?.id ?? null);

  if (!isSshFleet(spec)) {
    const backends = await projectBackends(ctx, actor.project, fleetBackendTypes(spec));
    offers = (await collectOffers(backends, fleetRequirements(spec), ctx.logger)).offers;
  }

  const shown = offers.slice(0, 50);

  return {
    project_name: actor.project.name,
    user: actor.user.name,
    spec,
    effective_spec: spec,
    current_resource:
      current === undefined ? null : await loadFleetWire(ctx.store, current, actor.project.name),
    offers: shown,
    total_offers: offers.length,
    max_offer_price: shown.length === 0 ? null : Math.max(...shown.map((offer) => offer.price)),
    action: current === undefined ? 'create' : 'update',
  };
}

/** The connection info of one SSH host, stored encrypted in `remoteConnectionInfo`. */
export interface RemoteConnectionInfo {
  hostname: string;
  port: number;
  user: string;
  privateKey: string;
  proxyJump: { hostname: string; port: number; user: string; privateKey: string } | null;
  internalIp: string | null;
  blocks: number | 'auto';
  env: Record<string, string>;
}

type SshKey = { public?: string | null; private?: string | null } | null | undefined;

/** The hosts of an SSH fleet spec with everything needed to reach them. */
export function sshHosts(spec: FleetSpec): RemoteConnectionInfo[] {
  const ssh = spec.configuration.ssh_config as Record<string, unknown>;
  const defaultKey = (ssh.ssh_key as SshKey)?.private ?? null;
  const hosts = (ssh.hosts as unknown[] | undefined) ?? [];
  const env = (spec.configuration.env as Record<string, string> | null | undefined) ?? {};
  const fleetBlocks = (spec.configuration.blocks as number | 'auto' | null | undefined) ?? 1;
  const jumpOf = (value: unknown): RemoteConnectionInfo['proxyJump'] => {
    if (value === null || value === undefined || typeof value !== 'object') {
      return null;
    }

    const jump = value as Record<string, unknown>;
    return {
      hostname: String(jump.hostname),
      port: Number(jump.port ?? 22),
      user: String(jump.user),
      privateKey: (jump.ssh_key as SshKey)?.private ?? defaultKey ?? '',
    };
  };

  return hosts.map((entry, index) => {
    const host = typeof entry === 'string'
      ? { hostname: entry }
      : (entry as Record<string, unknown>);
    const privateKey = (host.ssh_key as SshKey)?.private ?? defaultKey;
    const user = host.user ?? ssh.user;

    if (privateKey === null || privateKey === undefined || privateKey === '') {
      throw new ServerClientError('No SSH private key for the host', 'error', [
        ['ssh_config', 'hosts', String(index)],
      ]);
    }

    if (user === null || user === undefined) {
      throw new ServerClientError('No SSH user for the host', 'error', [
        ['ssh_config', 'hosts', String(index), 'user'],
      ]);
    }

    return {
      hostname: String(host.hostname),
      port: Number(host.port ?? ssh.port ?? 22),
      user: String(user),
      privateKey,
      proxyJump: jumpOf(host.proxy_jump ?? ssh.proxy_jump),
      internalIp: (host.internal_ip as string | null | undefined) ?? null,
      blocks: (host.blocks as number | 'auto' | null | undefined) ?? fleetBlocks,
      env,
    };
  });
}

function specHostnames(spec: FleetSpec): string[] {
  const ssh = spec.configuration.ssh_config as { hosts?: unknown[] } | null | undefined;

  return (ssh?.hosts ?? []).map((host) =>
    String(typeof host === 'string' ? host : (host as { hostname?: unknown }).hostname));
}

/**
 * Refuses hosts that a live instance of another fleet, in any project, already has: two
 * fleets on one host would both install their agent there and both run jobs on it.
 * TODO: applies in two projects at the same moment can both pass, as the fleet lock is per
 * project; it matters only for two admins adding one host at once.
 */
async function checkSshHostsNotYetAdded(
  ctx: CoreContext,
  access: StateAccess,
  spec: FleetSpec,
  currentFleetId: string | null,
): Promise<void> {
  const wanted = specHostnames(spec);

  if (wanted.length === 0) {
    return;
  }

  const instances = await access.find('instances', {
    where: { backend: 'remote', deleted: false },
  });
  const taken = new Set<string>();

  for (const instance of instances) {
    if (instance.fleetId === currentFleetId || instance.status === 'terminated' ||
      instance.remoteConnectionInfo === null) {
      continue;
    }

    try {
      taken.add((JSON.parse(ctx.cipher.decrypt(instance.remoteConnectionInfo)) as
        RemoteConnectionInfo).hostname);
    } catch {
      // A row no configured key can read names no host this check could compare.
    }
  }

  const clashing = [...new Set(wanted.filter((hostname) => taken.has(hostname)))];

  if (clashing.length > 0) {
    throw new ServerClientError(
      `Instances [${clashing.join(', ')}] are already assigned to a fleet.`,
    );
  }
}

function hostKey(info: { hostname: string; port: number }): string {
  return `${info.hostname}:${info.port}`;
}

async function addSshInstances(
  ctx: CoreContext,
  tx: StateAccess,
  fleet: FleetRecord,
  hosts: readonly RemoteConnectionInfo[],
  existing: readonly InstanceRecord[],
  now: number,
): Promise<void> {
  const nums = freeInstanceNums(existing, hosts.length);

  await tx.insert(
    'instances',
    hosts.map((host, index) => ({
      ...newInstanceRecord({
        projectId: fleet.projectId,
        fleetId: fleet.id,
        fleetName: fleet.name,
        instanceNum: nums[index]!,
        now,
        status: 'pending',
        backend: 'remote',
        idleSeconds: -1,
      }),
      region: 'remote',
      remoteConnectionInfo: ctx.cipher.encrypt(JSON.stringify(host)),
    })),
  );
}

/** Marks instances for termination; the instance pipeline ends them. */
export async function terminateInstances(
  tx: StateAccess,
  instances: readonly InstanceRecord[],
  reason: string,
  now: number,
): Promise<void> {
  for (const instance of instances) {
    if (instance.status === 'terminated' || instance.status === 'terminating') {
      continue;
    }

    await tx.update(
      'instances',
      { id: instance.id },
      { status: 'terminating', terminationReason: reason, lastProcessedAt: now },
    );
  }
}

/** Adds PENDING instances until the fleet has `nodes.min` live ones. */
export async function createMinInstances(
  tx: StateAccess,
  fleet: FleetRecord,
  spec: FleetSpec,
  existing: readonly InstanceRecord[],
  now: number,
): Promise<void> {
  const nodes = fleetNodes(spec);
  const active = existing.filter((i) => !i.deleted && i.status !== 'terminated' &&
    i.status !== 'terminating');
  const missing = nodes === null ? 0 : Math.max(0, nodes.min - active.length);

  if (missing === 0) {
    return;
  }

  const nums = freeInstanceNums(existing, missing);
  const idleSeconds = fleetIdleSeconds(spec, fleetIdleDefaultSeconds);

  await tx.insert(
    'instances',
    nums.map((instanceNum) =>
      newInstanceRecord({
        projectId: fleet.projectId,
        fleetId: fleet.id,
        fleetName: fleet.name,
        instanceNum,
        now,
        status: 'pending',
        backend: null,
        idleSeconds,
        profile: { requirements: fleetRequirements(spec), backends: fleetBackendTypes(spec) },
      }),
    ),
  );
}

async function uniqueFleetName(tx: StateAccess, projectId: string): Promise<string> {
  const fleets = await tx.find('fleets', { where: { projectId, deleted: false } });
  const taken = new Set(fleets.map((fleet) => fleet.name));

  for (let n = 1; ; n += 1) {
    const name = `fleet-${n}`;

    if (!taken.has(name)) {
      return name;
    }
  }
}

/** The body of `fleets/apply`. */
export interface ApplyFleetRequest {
  spec: FleetSpec;
  currentResource: Fleet | null;
  force: boolean;
}

/**
 * Creates the fleet, or updates the fleet of that name in place: SSH hosts that were added
 * or removed get instances created or terminated; nothing else of a running fleet changes.
 */
export async function applyFleetPlan(
  ctx: CoreContext,
  actor: ProjectActor,
  request: ApplyFleetRequest,
): Promise<Fleet> {
  validateFleetSpec(request.spec);

  const project = actor.project;
  const hosts = isSshFleet(request.spec) ? sshHosts(request.spec) : [];

  const fleet = await ctx.store.withLock(`fleet_names_${project.id}`, () =>
    ctx.store.transaction(async (tx) => {
      const now = ctx.now();
      const specName = request.spec.configuration.name as string | null | undefined;
      const current = specName ? await activeFleetByName(tx, project.id, specName) : undefined;

      await checkSshHostsNotYetAdded(ctx, tx, request.spec, current?.id ?? null);

      if (current === undefined) {
        const name = specName ?? (await uniqueFleetName(tx, project.id));
        // Private keys stay out of the plain JSON: each instance keeps its own, encrypted.
        const spec = redactFleetSpec({
          ...request.spec,
          configuration: { ...request.spec.configuration, name },
        });
        const record: FleetRecord = {
          id: newId(),
          projectId: project.id,
          name,
          createdAt: now,
          lastProcessedAt: now,
          deleted: false,
          deletedAt: null,
          status: 'active',
          statusMessage: null,
          spec,
          consolidationAttempt: 0,
          lockToken: null,
          lockOwner: null,
          lockExpiresAt: null,
        };

        await tx.insert('fleets', record);
        await recordEvent(ctx, tx, 'Fleet created', actor.user, [eventTarget.fleet(record)]);

        if (isSshFleet(spec)) {
          await addSshInstances(ctx, tx, record, hosts, [], now);
        } else {
          await createMinInstances(tx, record, spec, [], now);
        }

        return record;
      }

      const currentSpec = current.spec as FleetSpec;

      if (isSshFleet(currentSpec) !== isSshFleet(request.spec)) {
        throw new ServerClientError('Cannot change the fleet type between cloud and SSH');
      }

      if (!request.force && request.currentResource !== null &&
        request.currentResource.id !== current.id) {
        throw new ServerClientError(
          'Failed to apply plan. Resource has been changed. Try again or use force apply.',
        );
      }

      const existing = await fleetInstances(tx, current.id);

      if (isSshFleet(request.spec)) {
        const wanted = new Map(hosts.map((host) => [hostKey(host), host]));
        const present = new Map<string, InstanceRecord>();

        for (const instance of existing) {
          if (instance.deleted || instance.status === 'terminated' ||
            instance.remoteConnectionInfo === null) {
            continue;
          }

          const info = JSON.parse(ctx.cipher.decrypt(instance.remoteConnectionInfo));
          present.set(hostKey(info as RemoteConnectionInfo), instance);
        }

        const removed = [...present.entries()].filter(([key]) => !wanted.has(key));
        const added = [...wanted.entries()].filter(([key]) => !present.has(key));

        if (removed.some(([, instance]) => instance.status === 'busy')) {
          throw new ServerClientError('Cannot remove hosts that are running jobs');
        }

        await terminateInstances(tx, removed.map(([, i]) => i), 'terminated_by_user', now);
        await addSshInstances(ctx, tx, current, added.map(([, host]) => host), existing, now);
      } else {
        await createMinInstances(tx, current, request.spec, existing, now);
      }

      const spec = redactFleetSpec({
        ...request.spec,
        configuration: { ...request.spec.configuration, name: current.name },
      });

      await tx.update('fleets', { id: current.id }, { spec, lastProcessedAt: now });
      return { ...current, spec };
    }),
  );

  ctx.hint?.('instances');
  ctx.hint?.('fleets');
  ctx.logger.info({ fleetName: fleet.name, projectName: project.name }, 'fleet applied');

  return loadFleetWire(ctx.store, (await ctx.store.get('fleets', fleet.id))!, project.name);
}

/** The project's non-deleted fleets, newest first. */
export async function listProjectFleets(
  ctx: CoreContext,
  project: ProjectRecord,
): Promise<Fleet[]> {
  const fleets = await ctx.store.find('fleets', {
    where: { projectId: project.id, deleted: false },
    orderBy: [['createdAt', 'desc'], ['id', 'asc']],
  });

  return Promise.all(fleets.map((fleet) => loadFleetWire(ctx.store, fleet, project.name)));
}

/** The filters of the global `fleets/list`. */
export interface ListFleetsRequest {
  projectIds: readonly string[];
  onlyActive: boolean;
  prevCreatedAt: number | null;
  prevId: string | null;
  limit: number;
  ascending: boolean;
}

/** Fleets of the given projects with keyset pagination on (created_at, id). */
export async function listFleets(ctx: CoreContext, request: ListFleetsRequest): Promise<Fleet[]> {
  if (request.projectIds.length === 0 || request.limit === 0) {
    return [];
  }

  const where: Record<string, unknown> = { projectId: { in: request.projectIds } };

  if (request.onlyActive) {
    where.deleted = false;
  }

  if (request.prevCreatedAt !== null) {
    const op = request.ascending ? 'gt' : 'lt';
    const or: Record<string, unknown>[] = [{ createdAt: { [op]: request.prevCreatedAt } }];

    if (request.prevId !== null) {
      or.push({
        createdAt: request.prevCreatedAt,
        id: { [request.ascending ? 'lt' : 'gt']: request.prevId },
      });
    }

    where.$or = or;
  }

  const fleets = await ctx.store.find('fleets', {
    where: where as never,
    orderBy: request.ascending
      ? [['createdAt', 'asc'], ['id', 'desc']]
      : [['createdAt', 'desc'], ['id', 'asc']],
    limit: request.limit,
  });
  const projects = new Map<string, string>();

  for (const fleet of fleets) {
    if (!projects.has(fleet.projectId)) {
      projects.set(fleet.projectId, (await ctx.store.get('projects', fleet.projectId))?.name ?? '');
    }
  }

  return Promise.all(
    fleets.map((fleet) => loadFleetWire(ctx.store, fleet, projects.get(fleet.projectId)!)),
  );
}

/** One fleet by id (deleted ones too) or by name (non-deleted only). */
export async function getFleet(
  ctx: CoreContext,
  project: ProjectRecord,
  query: { name?: string | null; id?: string | null },
): Promise<Fleet> {
  let fleet: FleetRecord | undefined;

  if (query.id !== null && query.id !== undefined) {
    fleet = await ctx.store.findOne('fleets', { where: { id: query.id, projectId: project.id } });
  } else if (query.name !== null && query.name !== undefined) {
    fleet = await activeFleetByName(ctx.store, project.id, query.name);
  } else {
    throw new ServerClientError('name or id must be specified');
  }

  if (fleet === undefined) {
    throw new ResourceNotExistsError('Fleet not found');
  }

  return loadFleetWire(ctx.store, fleet, project.name);
}

async function activeRunsOnFleet(tx: StateAccess, fleetId: string): Promise<string[]> {
  const runs = await tx.find('runs', { where: { fleetId } });
  return runs.filter((run) => !isRunFinished(run.status)).map((run) => run.runName);
}

/**
 * Marks fleets for deletion: their instances terminate and the fleet pipeline removes the
 * fleet once they are gone. Unknown names are ignored.
 */
export async function deleteFleets(
  ctx: CoreContext,
  project: ProjectRecord,
  names: readonly string[],
  actor: Pick<UserRecord, 'id'> | null = null,
): Promise<void> {
  await ctx.store.transaction(async (tx) => {
    const now = ctx.now();

    for (const name of names) {
      const fleet = await activeFleetByName(tx, project.id, name);

      if (fleet === undefined) {
        continue;
      }

      const runs = await activeRunsOnFleet(tx, fleet.id);

      if (runs.length > 0) {
        throw new ServerClientError(
          `Failed to delete fleet ${name}: it is in use by active runs: ${runs.join(', ')}`,
        );
      }

      await terminateInstances(tx, await fleetInstances(tx, fleet.id), 'terminated_by_user', now);
      await tx.update('fleets', { id: fleet.id }, { status: 'terminating', lastProcessedAt: now });
      await recordEvent(ctx, tx, 'Fleet deleted', actor, [eventTarget.fleet(fleet)]);
    }
  });

  ctx.hint?.('instances');
  ctx.hint?.('fleets');
}

/** Terminates some instances of a fleet by number; busy ones refuse. */
export async function deleteFleetInstances(
  ctx: CoreContext,
  project: ProjectRecord,
  name: string,
  instanceNums: readonly number[],
): Promise<void> {
  await ctx.store.transaction(async (tx) => {
    const fleet = await activeFleetByName(tx, project.id, name);

    if (fleet === undefined) {
      throw new ResourceNotExistsError('Fleet not found');
    }

    const instances = (await fleetInstances(tx, fleet.id)).filter(
      (instance) => !instance.deleted && instanceNums.includes(instance.instanceNum),
    );
    const busy = instances.filter((instance) => instance.status === 'busy');

    if (busy.length > 0) {
      throw new ServerClientError(
        `Failed to delete busy instances: ${busy.map((i) => i.name).join(', ')}`,
      );
    }

    await terminateInstances(tx, instances, 'terminated_by_user', ctx.now());
  });

  ctx.hint?.('instances');
}

/** Name of the fleet every new project gets so that a task runs with no set-up. */
export const defaultFleetName = 'default';

/** The spec of the default fleet: local instances made on demand, ended after 5 idle minutes. */
export function defaultFleetSpec(maxNodes: number): FleetSpec {
  return {
    configuration: {
      type: 'fleet',
      name: defaultFleetName,
      placement: 'cluster',
      blocks: 1,
      nodes: { min: 0, max: maxNodes },
      reservation: null,
      resources: null,
      backends: ['local'],
      regions: null,
      availability_zones: null,
      instance_types: null,
      spot_policy: null,
      retry: null,
      max_price: null,
      idle_duration: 300,
      tags: null,
      backend_options: null,
      ssh_config: null,
      env: {},
    },
    configuration_path: null,
    profile: { name: '', default: false },
    autocreated: false,
  };
}

/** What `ensureDefaultFleet` found. */
export type DefaultFleetOutcome = 'created' | 'has-fleets' | 'no-local-backend' | 'no-project';

/**
 * Gives a project its default local fleet when it never had a fleet and has a `local`
 * backend. Safe to call at every start: once the project has had any fleet it does nothing.
 */
export async function ensureDefaultFleet(
  ctx: CoreContext,
  projectName: string,
  options: { maxNodes?: number } = {},
): Promise<DefaultFleetOutcome> {
  const project = await ctx.store.findOne('projects', {
    where: { name: projectName, deleted: false },
  });

  if (project === undefined) {
    return 'no-project';
  }

  return ctx.store.withLock(`fleet_names_${project.id}`, () =>
    ctx.store.transaction(async (tx) => {
      const fleets = await tx.count('fleets', { projectId: project.id });
      const local = await tx.count('backends', { projectId: project.id, type: 'local' });

      if (fleets > 0) {
        return 'has-fleets';
      }

      if (local === 0) {
        return 'no-local-backend';
      }

      const now = ctx.now();
      await tx.insert('fleets', {
        id: newId(),
        projectId: project.id,
        name: defaultFleetName,
        createdAt: now,
        lastProcessedAt: now,
        deleted: false,
        deletedAt: null,
        status: 'active',
        statusMessage: null,
        spec: defaultFleetSpec(options.maxNodes ?? 4),
        consolidationAttempt: 0,
        lockToken: null,
        lockOwner: null,
        lockExpiresAt: null,
      });
      ctx.logger.info({ projectName }, 'default fleet created');
      return 'created';
    }),
  );
}
