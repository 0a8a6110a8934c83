import type { CpuSpec, GpuSpec, Range, ResourcesSpec } from '../domain/resources.js';
import {
  configurationError,
  isPlainObject,
  showValue,
  type FieldPath,
} from './configuration-error.js';
import { parseMemory } from './memory.js';
import { parseIntRange, parseMemoryRange, parseInteger } from './range.js';

type GpuVendor = NonNullable<GpuSpec['vendor']>;
type CpuArch = NonNullable<CpuSpec['arch']>;

const GPU_VENDORS: readonly GpuVendor[] = ['nvidia', 'amd', 'google', 'intel', 'tenstorrent'];

/** The resources a configuration gets when it names none. */
export function defaultResources(): ResourcesSpec {
  return {
    cpu: { arch: null, count: { min: 2, max: null } },
    memory: { min: 8, max: null },
    shm_size: null,
    gpu: defaultGpu(),
    disk: { size: { min: 100, max: null } },
  };
}

/** The GPU spec written when a configuration asks for no GPU: any count, zero included. */
export function defaultGpu(): GpuSpec {
  return {
    vendor: null,
    name: null,
    count: { min: 0, max: null },
    memory: null,
    total_memory: null,
    compute_capability: null,
  };
}

/** Reads a vendor token: the five vendors in any case, plus the aliases `tpu` and `tt`. */
export function gpuVendorFromString(text: string): GpuVendor | null {
  const lower = text.toLowerCase();
  if (lower === 'tpu') {
    return 'google';
  }

  if (lower === 'tt') {
    return 'tenstorrent';
  }

  return (GPU_VENDORS as readonly string[]).includes(lower) ? (lower as GpuVendor) : null;
}

function checkKeys(value: Record<string, unknown>, allowed: readonly string[], path: FieldPath) {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) {
      throw configurationError([...path, key], 'extra fields not permitted');
    }
  }
}

function parseCpuArch(value: unknown, path: FieldPath): CpuArch | null {
  if (value === null || value === undefined) {
    return null;
  }

  const lower = typeof value === 'string' ? value.toLowerCase() : null;
  if (lower === 'x86' || lower === 'arm') {
    return lower;
  }

  throw configurationError(path, `invalid CPU architecture: ${showValue(value)}`);
}

/** Parses `cpu`: `8`, `"2..8"`, `"arm:4.."`, `{min, max}` or `{arch, count}`. */
export function parseCpu(value: unknown, path: FieldPath): CpuSpec {
  if (typeof value === 'number' || typeof value === 'string') {
    const text = String(value);
    let arch: CpuArch | null = null;
    let count: unknown;
    for (const token of text.replace(/ /g, '').split(':')) {
      if (token === '') {
        throw configurationError(path, `CPU spec contains empty token: ${text}`);
      }

      if (token.includes('..') || /^\d+$/.test(token)) {
        if (count !== undefined) {
          throw configurationError(path, `CPU spec count conflict: ${text}`);
        }

        count = token;
      } else {
        if (arch !== null) {
          throw configurationError(path, `CPU spec arch conflict: ${text}`);
        }

        arch = parseCpuArch(token, path);
      }
    }

    return {
      arch,
      count: count === undefined ? { min: 2, max: null } : parseIntRange(count, [...path, 'count']),
    };
  }

  if (!isPlainObject(value)) {
    throw configurationError(path, `invalid CPU spec: ${showValue(value)}`);
  }

  const keys = Object.keys(value);
  if (keys.length > 0 && keys.every((key) => key === 'min' || key === 'max')) {
    return { arch: null, count: parseIntRange(value, [...path, 'count']) };
  }

  checkKeys(value, ['arch', 'count'], path);

  return {
    arch: parseCpuArch(value.arch, [...path, 'arch']),
    count:
      value.count === undefined
        ? { min: 2, max: null }
        : parseIntRange(value.count, [...path, 'count']),
  };
}

function gpuFromShorthand(text: string, path: FieldPath): Record<string, unknown> {
  const spec: Record<string, unknown> = {};
  for (const token of text.replace(/ /g, '').split(':')) {
    if (token === '') {
      throw configurationError(path, `GPU spec contains empty token: ${text}`);
    }

    const vendor = gpuVendorFromString(token);
    let key: string;
    if (vendor !== null) {
      key = 'vendor';
    } else if (/^\p{L}/u.test(token)) {
      key = 'name';
    } else if (/\p{L}/u.test(token)) {
      key = 'memory';
    } else {
      key = 'count';
    }

    if (key in spec) {
      throw configurationError(path, `GPU spec ${key} conflict: ${text}`);
    }

    if (key === 'name') {
      const names = token.split(',');
      if (names.some((name) => name === '')) {
        throw configurationError(path, `GPU name can not be empty: ${text}`);
      }

      spec.name = names;
    } else {
      spec[key] = vendor ?? token;
    }
  }

  return spec;
}

function parseComputeCapability(value: unknown, path: FieldPath): [number, number] | null {
  if (value === null || value === undefined) {
    return null;
  }

  let parts: unknown[] | null = null;
  if (typeof value === 'number') {
    parts = Number.isInteger(value) ? [value, 0] : String(value).split('.');
  } else if (typeof value === 'string') {
    parts = value.trim().split('.');
  } else if (Array.isArray(value)) {
    parts = value;
  }

  if (parts === null || parts.length !== 2) {
    throw configurationError(path, `invalid compute capability: ${showValue(value)}`);
  }

  return [parseInteger(parts[0], [...path, 0]), parseInteger(parts[1], [...path, 1])];
}

function parseGpuNames(value: unknown, path: FieldPath): { names: string[] | null; tpu: boolean } {
  if (value === null || value === undefined) {
    return { names: null, tpu: false };
  }

  const list = Array.isArray(value) ? value : [value];
  let tpu = false;
  const names = list.map((name, index) => {
    if (typeof name !== 'string' && typeof name !== 'number') {
      throw configurationError([...path, index], `must be a string, got ${showValue(name)}`);
    }

    const text = String(name);
    if (text.startsWith('tpu-')) {
      tpu = true;

      return text.slice(4);
    }

    return text;
  });

  return { names, tpu };
}

/**
 * Parses `gpu`: a count (`2`), a `:`-separated shorthand of vendor, names, memory and count
 * (`A100:80GB:2`, `nvidia:24GB..`, `A100,H100:2`) or an object. A name's `tpu-` prefix is
 * dropped and, with no vendor given, means Google.
 */
export function parseGpu(value: unknown, path: FieldPath): GpuSpec {
  let spec: Record<string, unknown>;
  if (typeof value === 'number' || typeof value === 'string') {
    spec = gpuFromShorthand(String(value), path);
  } else if (isPlainObject(value)) {
    spec = value;
  } else {
    throw configurationError(path, `invalid GPU spec: ${showValue(value)}`);
  }

  checkKeys(
    spec,
    ['vendor', 'name', 'count', 'memory', 'total_memory', 'compute_capability'],
    path,
  );

  let vendor: GpuVendor | null = null;
  if (spec.vendor !== null && spec.vendor !== undefined) {
    vendor = typeof spec.vendor === 'string' ? gpuVendorFromString(spec.vendor) : null;
    if (vendor === null) {
      const shown = showValue(spec.vendor);
      throw configurationError([...path, 'vendor'], `invalid GPU vendor: ${shown}`);
    }
  }

  const { names, tpu } = parseGpuNames(spec.name, [...path, 'name']);
  const optionalMemory = (key: string): Range | null =>
    spec[key] === null || spec[key] === undefined
      ? null
      : parseMemoryRange(spec[key], [...path, key]);

  return {
    vendor: vendor ?? (tpu ? 'google' : null),
    name: names,
    count:
      spec.count === undefined
        ? { min: 1, max: null }
        : parseIntRange(spec.count, [...path, 'count']),
    memory: optionalMemory('memory'),
    total_memory: optionalMemory('total_memory'),
    compute_capability: parseComputeCapability(spec.compute_capability, [
      ...path,
      'compute_capability',
    ]),
  };
}

/** Parses `disk`: a size (`100GB`, `"200GB.."`, `500`) or `{size}`. */
export function parseDisk(value: unknown, path: FieldPath): { size: Range } {
  if (typeof value === 'string' || typeof value === 'number') {
    return { size: parseMemoryRange(value, [...path, 'size']) };
  }

  if (!isPlainObject(value)) {
    throw configurationError(path, `invalid disk spec: ${showValue(value)}`);
  }

  checkKeys(value, ['size'], path);
  if (value.size === undefined || value.size === null) {
    throw configurationError([...path, 'size'], 'field required');
  }

  return { size: parseMemoryRange(value.size, [...path, 'size']) };
}

/**
 * Parses a `resources` section into its serialized shape, filling every field the user left
 * out with the original's defaults.
 */
export function parseResourcesAt(value: unknown, path: FieldPath): ResourcesSpec {
  const resources = defaultResources();
  if (value === undefined) {
    return resources;
  }

  if (!isPlainObject(value)) {
    throw configurationError(path, `must be a mapping, got ${showValue(value)}`);
  }

  checkKeys(value, ['cpu', 'memory', 'shm_size', 'gpu', 'disk'], path);
  if (value.cpu !== undefined) {
    resources.cpu = parseCpu(value.cpu, [...path, 'cpu']);
  }

  if (value.memory !== undefined) {
    resources.memory = parseMemoryRange(value.memory, [...path, 'memory']);
  }

  if (value.shm_size !== undefined && value.shm_size !== null) {
    resources.shm_size = parseMemory(value.shm_size, [...path, 'shm_size']);
  }

  // An explicit null gpu gets the default, as the server does before it stores a spec.
  if (value.gpu !== undefined && value.gpu !== null) {
    resources.gpu = parseGpu(value.gpu, [...path, 'gpu']);
  }

  // TODO: the original keeps `disk: null` (no disk requirement); ResourcesSpec has no null disk.
  if (value.disk !== undefined && value.disk !== null) {
    resources.disk = parseDisk(value.disk, [...path, 'disk']);
  }

  return resources;
}

/** Parses a standalone `resources` value (errors name `resources.*`). */
export function parseResources(input: unknown): ResourcesSpec {
  return parseResourcesAt(input, ['resources']);
}
