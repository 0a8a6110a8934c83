import type {
  ParsedFleetSpec,
  ParsedRunSpec,
  Profile,
  ProfileParams,
  RetryEvent,
  RunConfiguration,
} from '../domain/configurations.js';
import type { GpuSpec, Requirements, ResourcesSpec } from '../domain/resources.js';
import { ServerClientError } from '../errors/server-errors.js';
import { gpuVendorsByName } from './gpu-vendors.js';
import { emptyProfile, profileParamNames } from './profile.js';

type GpuVendor = NonNullable<GpuSpec['vendor']>;

/** The repo a run without one gets: the virtual repo `none`. */
export const VIRTUAL_REPO_ID = 'none';

/** How long a run keeps being retried when its retry policy names no duration. */
export const DEFAULT_RETRY_DURATION_SECONDS = 3600;

const ALL_RETRY_EVENTS: RetryEvent[] = ['no-capacity', 'interruption', 'error'];

/** The retry policy a job gets from a (merged) profile, with the defaults resolved. */
export interface RetryPolicy {
  on_events: RetryEvent[];
  duration: number;
}

/**
 * Resolves `retry`: `true` retries on every event for an hour, an object fills the events and
 * duration it leaves out the same way, and `false` or null means no retry.
 */
export function retryPolicy(profile: Pick<ProfileParams, 'retry'>): RetryPolicy | null {
  const retry = profile.retry;
  if (retry === null || retry === false) {
    return null;
  }

  if (retry === true) {
    return { on_events: [...ALL_RETRY_EVENTS], duration: DEFAULT_RETRY_DURATION_SECONDS };
  }

  return {
    on_events: retry.on_events ?? [...ALL_RETRY_EVENTS],
    duration: retry.duration ?? DEFAULT_RETRY_DURATION_SECONDS,
  };
}

interface ImageSource {
  image: string | null;
  docker: boolean | null;
}

/**
 * Infers the GPU vendor the original's way: NVIDIA for a nameless request on the default
 * image, else the single vendor all named models share. Nothing when no GPU is wanted.
 */
function inferGpuVendor(gpu: GpuSpec, source: ImageSource): void {
  if (gpu.vendor !== null || gpu.count.max === 0) {
    return;
  }

  if (!gpu.name || gpu.name.length === 0) {
    if (source.image === null && !source.docker) {
      gpu.vendor = 'nvidia';
    }

    return;
  }

  const vendors = new Set<GpuVendor | null>();
  for (const name of gpu.name) {
    const known = gpuVendorsByName(name);
    if (known.size === 0) {
      vendors.add(null);
    }

    known.forEach((vendor) => vendors.add(vendor));
  }

  if (vendors.size === 1) {
    gpu.vendor = [...vendors][0];
  }
}

/** Vendors whose accelerators the default image cannot drive, so an `image` is needed. */
function vendorsNeedingImage(gpu: GpuSpec, source: ImageSource): GpuVendor[] {
  if (source.image !== null || source.docker || gpu.count.max === 0) {
    return [];
  }

  const vendors = new Set<GpuVendor>();
  if (gpu.vendor !== null) {
    vendors.add(gpu.vendor);
  } else {
    (gpu.name ?? []).forEach((name) => gpuVendorsByName(name).forEach((v) => vendors.add(v)));
  }

  vendors.delete('nvidia');
  vendors.delete('google');

  return [...vendors].sort();
}

interface ResourceSlot {
  resources: ResourcesSpec;
  source: ImageSource;
  group: number | null;
}

function resourceSlots(configuration: RunConfiguration): ResourceSlot[] {
  const top: ImageSource = { image: configuration.image, docker: configuration.docker };
  const slots: ResourceSlot[] = [{ resources: configuration.resources, source: top, group: null }];
  if (configuration.type === 'task' && configuration.groups !== null) {
    configuration.groups.forEach((group, index) =>
      slots.push({ resources: group.resources, source: top, group: index }),
    );
  }

  if (configuration.type === 'service' && Array.isArray(configuration.replicas)) {
    configuration.replicas.forEach((group, index) =>
      slots.push({
        resources: group.resources,
        source: { image: group.image ?? top.image, docker: group.docker ?? top.docker },
        group: index,
      }),
    );
  }

  return slots;
}

function checkImageForAccelerators(slots: ResourceSlot[]): void {
  const hasGroups = slots.some((slot) => slot.group !== null);
  const relevant = hasGroups ? slots.filter((slot) => slot.group !== null) : slots;
  const vendors = new Set<GpuVendor>();
  const groups: number[] = [];
  for (const slot of relevant) {
    const needed = vendorsNeedingImage(slot.resources.gpu, slot.source);
    if (needed.length > 0) {
      needed.forEach((vendor) => vendors.add(vendor));
      groups.push(slot.group ?? 0);
    }
  }

  if (vendors.size > 0) {
    const listed = [...vendors].sort().map((vendor) => `'${vendor}'`).join(', ');
    const message =
      '`image` must be set when the requested accelerator is not supported by the default' +
      ` image: [${listed}]`;
    throw new ServerClientError(hasGroups ? `groups[${groups.join(', ')}]: ${message}` : message);
  }

  const armWithoutImage = relevant.filter(
    (slot) => slot.resources.cpu.arch === 'arm' && !slot.source.docker && !slot.source.image,
  );
  const armWithDocker = relevant.filter(
    (slot) => slot.resources.cpu.arch === 'arm' && slot.source.docker,
  );
  const problems: string[] = [];
  const prefix = (list: ResourceSlot[]) =>
    hasGroups ? `groups[${list.map((slot) => slot.group).join(', ')}]: ` : '';
  if (armWithDocker.length > 0) {
    problems.push(`${prefix(armWithDocker)}\`docker: true\` is not supported on ARM CPU`);
  }

  if (armWithoutImage.length > 0) {
    problems.push(`${prefix(armWithoutImage)}\`image\` must be set when ARM CPU requested`);
  }

  if (problems.length > 0) {
    throw new ServerClientError(problems.join('\n'));
  }
}

/**
 * The spec the server stores and plans with: the client's spec plus the original's server
 * defaults (virtual repo, priority 0, `nodes: 1` for tasks without groups, GPU vendor
 * inferred). Throws a 400 when the accelerators or CPU arch need an `image` that is missing.
 * `ssh_key_pub` is left to the caller, which knows the user's key.
 */
export function effectiveRunSpec(spec: ParsedRunSpec): ParsedRunSpec {
  const retry = mergedProfile(spec).retry;
  if (typeof retry === 'object' && retry !== null && (retry.duration ?? 0) < 0) {
    throw new ServerClientError('retry.duration cannot be negative');
  }

  const effective = structuredClone(spec);
  effective.repo_id ??= VIRTUAL_REPO_ID;
  effective.repo_data ??= { repo_type: 'virtual' };
  const configuration = effective.configuration;
  configuration.priority ??= 0;
  if (configuration.type === 'task' && configuration.groups === null) {
    configuration.nodes ??= 1;
  }

  const slots = resourceSlots(configuration);
  slots.forEach((slot) => inferGpuVendor(slot.resources.gpu, slot.source));
  checkImageForAccelerators(slots);

  return effective;
}

function overlay(profile: Profile, source: Partial<ProfileParams>): Profile {
  const merged = structuredClone(profile) as unknown as Record<string, unknown>;
  for (const key of profileParamNames) {
    const value = source[key];
    if (value !== null && value !== undefined) {
      merged[key] = structuredClone(value);
    }
  }

  return merged as unknown as Profile;
}

/**
 * The run's profile with the configuration's own values laid over it, and
 * `creation_policy` defaulted to `reuse-or-create`. Computed, never serialized.
 */
export function mergedProfile(runSpec: ParsedRunSpec): Profile {
  const merged = overlay(runSpec.profile ?? emptyProfile('default'), runSpec.configuration);
  merged.creation_policy ??= 'reuse-or-create';

  return merged;
}

/**
 * The fleet's profile with the configuration's values laid over it; `spot_policy` defaults to
 * on-demand and `retry` to false.
 */
export function mergedFleetProfile(fleetSpec: ParsedFleetSpec): Profile {
  // A fleet configuration carries a subset of the profile parameters; the rest stay unset.
  const configuration: Partial<ProfileParams> = fleetSpec.configuration;
  const merged = overlay(fleetSpec.profile, configuration);
  merged.spot_policy ??= 'on-demand';
  merged.retry ??= false;

  return merged;
}

/** Options of `requirementsFromRunSpec`. */
export interface RequirementsOptions {
  /** The node group (task) or replica group (service) whose resources apply. */
  groupName?: string;
  /**
   * The CPU arch a job on the default image needs when the configuration sets none. The
   * original's default image is x86 only; the local backend runs no image, so the default
   * here is null (any arch), which keeps ARM laptops working.
   */
  defaultImageCpuArch?: 'x86' | 'arm' | null;
}

/**
 * What a job of this run needs from an instance: its resources, the price cap, spot from
 * `spot_policy` (spot true, on-demand false, auto null; runs default to on-demand), the
 * reservation and whether the job is one of several nodes. Pass the effective spec, so the
 * GPU vendor is already inferred.
 */
export function requirementsFromRunSpec(
  spec: ParsedRunSpec,
  options: RequirementsOptions = {},
): Requirements {
  const profile = mergedProfile(spec);
  const configuration = spec.configuration;
  let resources = configuration.resources;
  let image = configuration.image;
  let spotPolicy = profile.spot_policy;
  let reservation = profile.reservation;
  let nodes = 1;
  if (configuration.type === 'task') {
    const groups = configuration.groups ?? [];
    resources = groups.find((item) => item.name === options.groupName)?.resources ?? resources;
    nodes =
      groups.length > 0
        ? groups.reduce((total, group) => total + group.nodes, 0)
        : (configuration.nodes ?? 1);
  } else if (configuration.type === 'service' && Array.isArray(configuration.replicas)) {
    const group = configuration.replicas.find((item) => item.name === options.groupName);
    resources = group?.resources ?? resources;
    image = group?.image ?? image;
    spotPolicy = group?.spot_policy ?? spotPolicy;
    reservation = group?.reservation ?? reservation;
  }

  const needed = structuredClone(resources);
  // TODO: a custom image's arch comes from its registry in the original; matters on ARM hosts.
  if (needed.cpu.arch === null && image === null) {
    needed.cpu.arch = options.defaultImageCpuArch ?? null;
  }

  const policy = spotPolicy ?? 'on-demand';

  return {
    resources: needed,
    max_price: profile.max_price,
    spot: policy === 'auto' ? null : policy === 'spot',
    reservation,
    multinode: nodes > 1,
  };
}
