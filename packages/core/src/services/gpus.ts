import { effectiveRunSpec, parseRunSpec } from '../configurations/index.js';
import type { CoreContext } from '../context.js';
import type { GpuGroupBy, WireGpuGroup, WireGpusList } from '../domain/gpu.js';
import type { InstanceOffer, OfferAvailability, Requirements } from '../domain/resources.js';
import type { RunSpec } from '../domain/run.js';
import { ServerClientError } from '../errors/server-errors.js';
import type { ProjectRecord, UserRecord } from '../records.js';
import { runProfileParams } from './jobs.js';
import { collectOffers, projectBackends } from './offers.js';
import { runRequirements } from './run-spec.js';

/** Who lists GPUs in which project. */
export interface GpusScope {
  user: Pick<UserRecord, 'id'>;
  project: Pick<ProjectRecord, 'id' | 'name'>;
}

/** One GPU configuration a backend offers: a type, how many of it, spot or not, where. */
interface BackendGpu {
  name: string;
  memoryMib: number;
  vendor: string;
  availability: OfferAvailability;
  spot: boolean;
  count: number;
  price: number;
  region: string;
}

type GpuCount = Pick<BackendGpu, 'name' | 'memoryMib' | 'vendor' | 'count'>;

interface BackendGpus {
  backend: string;
  gpus: BackendGpu[];
  regions: string[];
}

function isAvailable(availability: OfferAvailability): boolean {
  return availability === 'available' || availability === 'idle';
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Offers per backend, reduced to distinct GPU configurations, as the original does. */
function backendGpusOf(offers: readonly InstanceOffer[]): BackendGpus[] {
  const byBackend = new Map<string, { gpus: Map<string, BackendGpu>; regions: Set<string> }>();

  for (const offer of offers) {
    let entry = byBackend.get(offer.backend);

    if (entry === undefined) {
      entry = { gpus: new Map(), regions: new Set() };
      byBackend.set(offer.backend, entry);
    }

    entry.regions.add(offer.region);
    const counts = new Map<string, GpuCount>();

    for (const gpu of offer.instance.resources.gpus) {
      const key = JSON.stringify([gpu.name, gpu.memory_mib, gpu.vendor]);
      const known = counts.get(key);
      counts.set(key, known === undefined
        ? { name: gpu.name, memoryMib: gpu.memory_mib, vendor: gpu.vendor, count: 1 }
        : { ...known, count: known.count + 1 });
    }

    const spot = offer.instance.resources.spot;

    for (const gpu of counts.values()) {
      const key = JSON.stringify([
        gpu.name, gpu.memoryMib, gpu.vendor, gpu.count, spot, offer.region,
      ]);

      if (!entry.gpus.has(key)) {
        entry.gpus.set(key, {
          name: gpu.name,
          memoryMib: gpu.memoryMib,
          vendor: gpu.vendor,
          availability: offer.availability,
          spot,
          count: gpu.count,
          price: offer.price,
          region: offer.region,
        });
      }
    }
  }

  return [...byBackend].map(([backend, entry]) => ({
    backend,
    regions: [...entry.regions].sort(compareText),
    gpus: [...entry.gpus.values()].sort((a, b) =>
      Number(!isAvailable(a.availability)) - Number(!isAvailable(b.availability))
        || compareText(a.vendor, b.vendor)
        || compareText(a.name, b.name)
        || a.memoryMib - b.memoryMib),
  }));
}

interface Grouping {
  backend: boolean;
  region: boolean;
  count: boolean;
}

function groupKey(gpu: BackendGpu, backend: string, by: Grouping): string {
  return JSON.stringify([
    gpu.name,
    gpu.memoryMib,
    gpu.vendor,
    by.backend ? backend : null,
    by.region ? gpu.region : null,
    by.count ? gpu.count : null,
  ]);
}

function newGroup(gpu: BackendGpu, source: BackendGpus, by: Grouping): WireGpuGroup {
  const perGpu = gpu.price / gpu.count;
  const group: WireGpuGroup = {
    name: gpu.name,
    memory_mib: gpu.memoryMib,
    vendor: gpu.vendor,
    availability: [gpu.availability],
    spot: [gpu.spot ? 'spot' : 'on-demand'],
    count: { min: gpu.count, max: gpu.count },
    price: { min: perGpu, max: perGpu },
  };

  if (!by.backend) {
    group.backends = [source.backend];
  } else if (by.region) {
    group.backend = source.backend;
    group.region = gpu.region;
  } else {
    group.backend = source.backend;
    group.regions = [...source.regions];
  }

  return group;
}

function mergeInto(group: WireGpuGroup, gpu: BackendGpu, backend: string): void {
  const spot = gpu.spot ? 'spot' : 'on-demand';
  const perGpu = gpu.price / gpu.count;

  if (!group.availability.includes(gpu.availability)) {
    group.availability.push(gpu.availability);
  }

  if (!group.spot.includes(spot)) {
    group.spot.push(spot);
  }

  if (group.backends !== undefined && !group.backends.includes(backend)) {
    group.backends.push(backend);
  }

  group.count.min = Math.min(group.count.min, gpu.count);
  group.count.max = Math.max(group.count.max, gpu.count);
  group.price.min = Math.min(group.price.min, perGpu);
  group.price.max = Math.max(group.price.max, perGpu);
}

function compareGroups(a: WireGpuGroup, b: WireGpuGroup, by: Grouping): number {
  const unavailable = (group: WireGpuGroup): number =>
    Number(!group.availability.some(isAvailable));

  return unavailable(a) - unavailable(b)
    || a.price.min - b.price.min
    || a.price.max - b.price.max
    || (by.backend ? compareText(a.backend ?? '', b.backend ?? '') : 0)
    || (by.region ? compareText(a.region ?? '', b.region ?? '') : 0)
    || (by.count ? a.count.min - b.count.min : 0)
    || compareText(a.name, b.name)
    || a.memory_mib - b.memory_mib;
}

/** Groups per-backend GPU configurations into `gpus/list` rows, sorted as the original. */
export function groupGpus(
  offers: readonly InstanceOffer[],
  groupBy: readonly GpuGroupBy[] | null,
): WireGpuGroup[] {
  const by: Grouping = {
    backend: groupBy?.includes('backend') ?? false,
    region: groupBy?.includes('region') ?? false,
    count: groupBy?.includes('count') ?? false,
  };

  if (by.region && !by.backend) {
    throw new ServerClientError("Cannot group by 'region' without also grouping by 'backend'");
  }

  const groups = new Map<string, WireGpuGroup>();

  for (const source of backendGpusOf(offers)) {
    for (const gpu of source.gpus) {
      const key = groupKey(gpu, source.backend, by);
      const group = groups.get(key);

      if (group === undefined) {
        groups.set(key, newGroup(gpu, source, by));
      } else {
        mergeInto(group, gpu, source.backend);
      }
    }
  }

  return [...groups.values()].sort((a, b) => compareGroups(a, b, by));
}

/**
 * The GPUs the project's backends offer for the run spec's resources (`dstack offer`),
 * grouped by `group_by`. Unavailable offers are included; backends that fail are skipped.
 */
export async function listGpus(
  ctx: CoreContext,
  scope: GpusScope,
  runSpecInput: unknown,
  groupBy: readonly GpuGroupBy[] | null,
): Promise<WireGpusList> {
  // No SSH key is needed to look at offers, so the spec is not normalized for a run.
  const spec = effectiveRunSpec(parseRunSpec(runSpecInput)) as unknown as RunSpec;
  const profile = runProfileParams(spec);
  const requirements: Requirements = {
    ...runRequirements(spec),
    // The original asks with spot_policy auto when none is set, and for one node.
    ...(profile.spot_policy === null || profile.spot_policy === undefined ? { spot: null } : {}),
    multinode: false,
  };
  const backendTypes = (profile.backends as string[] | null | undefined) ?? null;
  const regions = (profile.regions as string[] | null | undefined) ?? null;
  const backends = await projectBackends(ctx, scope.project, backendTypes);
  const { offers } = await collectOffers(backends, requirements, ctx.logger);
  const wanted = regions === null || regions.length === 0
    ? offers
    : offers.filter((offer) => regions.includes(offer.region));

  return { gpus: groupGpus(wanted, groupBy) };
}
