import type { CoreContext } from '../context.js';
import type {
  InstanceOffer,
  InstanceResources,
  Range,
  Requirements,
} from '../domain/resources.js';
import type { BackendProvider, BackendSettings } from '../ports/backend-provider.js';
import type { BackendRecord, InstanceRecord } from '../records.js';

/** A backend configured in a project, with its provider and decrypted settings. */
export interface UsableBackend {
  record: BackendRecord;
  provider: BackendProvider;
  settings: BackendSettings;
}

/** The project's backends whose type has a registered provider, optionally only `types`. */
export async function projectBackends(
  ctx: CoreContext,
  project: { id: string; name: string },
  types?: readonly string[] | null,
): Promise<UsableBackend[]> {
  const records = await ctx.store.find('backends', { where: { projectId: project.id } });
  const result: UsableBackend[] = [];

  for (const record of records) {
    const provider = ctx.providers.get(record.type);

    if (provider === undefined || (types && types.length > 0 && !types.includes(record.type))) {
      continue;
    }

    const creds = record.auth === null ? null : JSON.parse(ctx.cipher.decrypt(record.auth));
    result.push({
      record,
      provider,
      settings: {
        projectName: project.name,
        config: (record.config as Record<string, unknown> | null) ?? {},
        creds,
      },
    });
  }

  return result;
}

/** Offers of several backends, merged cheapest first, and why any backend gave none. */
export interface OffersResult {
  offers: InstanceOffer[];
  /** One line per backend that failed to answer. */
  errors: string[];
}

/** Asks every backend for offers that meet the requirements and merges them by price. */
export async function collectOffers(
  backends: readonly UsableBackend[],
  requirements: Requirements,
  log: CoreContext['logger'],
): Promise<OffersResult> {
  const errors: string[] = [];
  const lists = await Promise.all(
    backends.map(async (backend) => {
      if (requirements.multinode === true && !backend.provider.capabilities.multinode) {
        return [];
      }

      try {
        return await backend.provider.getOffers({ ...backend.settings, requirements });
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        log.warn({ backend: backend.record.type, err: message }, 'backend offers failed');
        errors.push(`${backend.record.type}: ${message}`);
        return [];
      }
    }),
  );
  const offers = lists.flat().filter((offer) => fitsPrice(offer.price, requirements));
  const rank = (offer: InstanceOffer): number =>
    offer.availability === 'not_available' || offer.availability === 'no_quota' ? 1 : 0;

  offers.sort((a, b) => rank(a) - rank(b) || a.price - b.price);
  return { offers, errors };
}

function fitsPrice(price: number, requirements: Requirements): boolean {
  return requirements.max_price === null || price <= requirements.max_price;
}

function inRange(value: number, range: Range | null | undefined): boolean {
  if (range === null || range === undefined) {
    return true;
  }

  return (range.min === null || value >= range.min) && (range.max === null || value <= range.max);
}

/** Whether an instance's resources meet a job's resource requirements. */
export function resourcesFit(resources: InstanceResources, requirements: Requirements): boolean {
  const spec = requirements.resources;
  const gpus = resources.gpus ?? [];
  const gpuSpec = spec.gpu;

  if (!inRange(resources.cpus, spec.cpu?.count) ||
    !inRange(resources.memory_mib / 1024, spec.memory)) {
    return false;
  }

  if (spec.cpu?.arch && resources.cpu_arch && spec.cpu.arch !== resources.cpu_arch) {
    return false;
  }

  if (spec.disk?.size && resources.disk &&
    !inRange(resources.disk.size_mib / 1024, spec.disk.size)) {
    return false;
  }

  if (gpuSpec === undefined || gpuSpec === null) {
    return true;
  }

  if (!inRange(gpus.length, gpuSpec.count)) {
    return false;
  }

  if (gpus.length === 0) {
    return true;
  }

  const names = gpuSpec.name?.map((name) => name.toLowerCase()) ?? null;

  return gpus.every(
    (gpu) =>
      (names === null || names.includes(gpu.name.toLowerCase())) &&
      inRange(gpu.memory_mib / 1024, gpuSpec.memory) &&
      (gpuSpec.vendor === null || gpu.vendor.toLowerCase() === gpuSpec.vendor),
  );
}

/** Whether an existing instance can take one more job with these requirements. */
export function instanceFits(instance: InstanceRecord, requirements: Requirements): boolean {
  const type = instance.instanceType as { resources: InstanceResources } | null;

  if (instance.status !== 'idle' && instance.status !== 'busy') {
    return false;
  }

  if (instance.unreachable || instance.deleted || type === null || instance.totalBlocks === null) {
    return false;
  }

  if (instance.busyBlocks >= instance.totalBlocks) {
    return false;
  }

  if (requirements.spot !== null && type.resources.spot !== requirements.spot) {
    return false;
  }

  return resourcesFit(type.resources, requirements) && fitsPrice(instance.price ?? 0, requirements);
}

/** An instance as a plan offer (`availability: idle` or `busy`). */
export function instanceAsOffer(instance: InstanceRecord): InstanceOffer {
  const type = instance.instanceType as InstanceOffer['instance'];

  return {
    backend: instance.backend ?? 'local',
    instance: type,
    region: instance.region ?? '',
    price: instance.price ?? 0,
    backend_data: {},
    availability: instance.status === 'idle' ? 'idle' : 'busy',
    availability_zones: instance.availabilityZone === null ? null : [instance.availabilityZone],
    instance_runtime: 'runner',
    blocks: 1,
    total_blocks: instance.totalBlocks ?? 1,
  };
}

/** The profile filters that decide which existing instances a run may take. */
export interface InstanceFilter {
  backends: string[] | null;
  instances: unknown[] | null;
}

/** The `backends` and `instances` filters of a run's merged profile parameters. */
export function instanceFilterOf(params: Record<string, unknown>): InstanceFilter {
  const backends = Array.isArray(params.backends) && params.backends.length > 0
    ? params.backends.map(String)
    : null;
  const instances = Array.isArray(params.instances) && params.instances.length > 0
    ? params.instances
    : null;

  return { backends, instances };
}

function selectorMatches(selector: unknown, instance: InstanceRecord, fleetName: string): boolean {
  if (typeof selector === 'string') {
    return instance.name === selector;
  }

  if (selector === null || typeof selector !== 'object') {
    return false;
  }

  const value = selector as Record<string, unknown>;

  if ('fleet' in value) {
    const fleet = value.fleet;
    const name = typeof fleet === 'string'
      ? fleet.split('/').pop()
      : (fleet as { name?: unknown } | null)?.name;

    return name === fleetName && Number(value.instance) === instance.instanceNum;
  }

  if ('hostname' in value) {
    const data = instance.provisioningData as { hostname?: unknown } | null;
    return data !== null && data.hostname === value.hostname;
  }

  return instance.name === value.name;
}

/**
 * Whether an existing instance of the fleet `fleetName` passes a run's profile filters: its
 * backend is among `backends` and it matches one of the `instances` selectors, when set.
 */
export function instanceMatchesFilter(
  instance: InstanceRecord,
  fleetName: string,
  filter: InstanceFilter,
): boolean {
  if (filter.backends !== null && !filter.backends.includes(instance.backend ?? '')) {
    return false;
  }

  return filter.instances === null ||
    filter.instances.some((selector) => selectorMatches(selector, instance, fleetName));
}
