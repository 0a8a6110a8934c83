import type {
  FleetConfiguration,
  FleetNodes,
  SshHostParams,
  SshKey,
  SshParams,
  SshProxyParams,
} from '../domain/configurations.js';
import {
  configurationError,
  isPlainObject,
  showValue,
  type FieldPath,
} from './configuration-error.js';
import { parseIdleDuration } from './duration.js';
import { parseEnv } from './env.js';
import { maxNodeCount } from './limits.js';
import { parseBackendOptions, parseRetry, parseTags } from './profile.js';
import { parseInteger } from './range.js';
import { parseResourcesAt } from './resources.js';
import { createInputSchema } from './schema-validation.js';
import { fleetSchema } from './schemas.js';

type Input = Record<string, unknown>;

const fleetInput = createInputSchema(fleetSchema);

/**
 * Reads a fleet's `nodes`: `2` (exactly two), `"1..4"`, `"2.."` or `{min?, target?, max?}`.
 * `min` defaults to 0 and `target` to `min`; `target` is left out when it equals `min`.
 */
export function parseFleetNodes(value: unknown, path: FieldPath): FleetNodes {
  let spec: Input;
  if (typeof value === 'string' && value.includes('..')) {
    const parts = value.replace(/ /g, '').split('..');
    if (parts.length !== 2) {
      throw configurationError(path, `invalid range: ${showValue(value)}`);
    }

    spec = { min: parts[0] || null, max: parts[1] || null };
  } else if (typeof value === 'string' || typeof value === 'number') {
    spec = { min: value, max: value };
  } else if (isPlainObject(value)) {
    spec = value;
  } else {
    throw configurationError(path, `invalid nodes: ${showValue(value)}`);
  }

  for (const key of Object.keys(spec)) {
    if (!['min', 'target', 'max'].includes(key)) {
      throw configurationError([...path, key], 'extra fields not permitted');
    }
  }

  const min = spec.min == null ? 0 : parseInteger(spec.min, [...path, 'min']);
  const target = spec.target == null ? min : parseInteger(spec.target, [...path, 'target']);
  const max = spec.max == null ? null : parseInteger(spec.max, [...path, 'max']);
  if (min < 0) {
    throw configurationError([...path, 'min'], 'min cannot be negative');
  }

  for (const [key, bound] of [['min', min], ['target', target], ['max', max]] as const) {
    if (bound !== null && bound > maxNodeCount) {
      throw configurationError([...path, key], `at most ${maxNodeCount} nodes are supported`);
    }
  }

  if (target < min) {
    throw configurationError([...path, 'target'], 'target must not be less than min');
  }

  if (max !== null && max < min) {
    throw configurationError([...path, 'max'], 'max must not be less than min');
  }

  if (max !== null && max < target) {
    throw configurationError([...path, 'max'], 'max must not be less than target');
  }

  return target === min ? { min, max } : { min, target, max };
}

function parseSshKey(value: unknown): SshKey | null {
  if (value == null) {
    return null;
  }

  const key = value as Input;

  return { public: String(key.public), private: key.private == null ? null : String(key.private) };
}

function parseProxy(value: unknown): SshProxyParams | null {
  if (value == null) {
    return null;
  }

  const proxy = value as Input;

  return {
    hostname: String(proxy.hostname),
    port: (proxy.port ?? null) as number | null,
    user: String(proxy.user),
    identity_file: String(proxy.identity_file),
    ssh_key: parseSshKey(proxy.ssh_key),
  };
}

function parseIpv4(text: string): number[] | null {
  const parts = text.split('.');
  if (parts.length !== 4 || parts.some((part) => !/^\d{1,3}$/.test(part) || Number(part) > 255)) {
    return null;
  }

  return parts.map(Number);
}

/** The main private ranges of IPv4 and IPv6 (unique and link local); null if not an address. */
function isPrivateAddress(text: string): boolean | null {
  const v4 = parseIpv4(text);
  if (v4 !== null) {
    const [a, b] = v4;

    return (
      a === 10 ||
      a === 127 ||
      (a === 172 && b >= 16 && b <= 31) ||
      (a === 192 && b === 168) ||
      (a === 169 && b === 254) ||
      a === 0
    );
  }

  if (/^[0-9a-fA-F:]+$/.test(text) && text.includes(':')) {
    const lower = text.toLowerCase();

    return lower === '::1' || /^f[cd]/.test(lower) || /^fe[89ab]/.test(lower);
  }

  return null;
}

function parseHost(value: unknown, path: FieldPath): SshHostParams | string {
  if (typeof value === 'string') {
    return value;
  }

  const host = value as Input;
  const internalIp = host.internal_ip == null ? null : String(host.internal_ip);
  if (internalIp !== null) {
    const isPrivate = isPrivateAddress(internalIp);
    if (isPrivate === null) {
      throw configurationError([...path, 'internal_ip'], 'invalid IP address');
    }

    if (!isPrivate) {
      throw configurationError([...path, 'internal_ip'], 'IP address is not private');
    }
  }

  return {
    hostname: String(host.hostname),
    port: (host.port ?? null) as number | null,
    user: host.user == null ? null : String(host.user),
    identity_file: host.identity_file == null ? null : String(host.identity_file),
    proxy_jump: parseProxy(host.proxy_jump),
    internal_ip: internalIp,
    ssh_key: parseSshKey(host.ssh_key),
    blocks: (host.blocks ?? null) as SshHostParams['blocks'],
  };
}

function parseSshConfig(value: unknown, path: FieldPath): SshParams | null {
  if (value == null) {
    return null;
  }

  const config = value as Input;
  const network = config.network == null ? null : String(config.network);
  if (network !== null) {
    const [address, prefix, ...rest] = network.split('/');
    const isPrivate = isPrivateAddress(address);
    if (isPrivate === null || rest.length > 0 || (prefix !== undefined && !/^\d+$/.test(prefix))) {
      throw configurationError([...path, 'network'], `failed to parse network: ${network}`);
    }

    if (!isPrivate) {
      throw configurationError(
        [...path, 'network'],
        'public network is specified when private network is required',
      );
    }
  }

  return {
    user: config.user == null ? null : String(config.user),
    port: (config.port ?? null) as number | null,
    identity_file: config.identity_file == null ? null : String(config.identity_file),
    ssh_key: parseSshKey(config.ssh_key),
    proxy_jump: parseProxy(config.proxy_jump),
    hosts: (config.hosts as unknown[]).map((host, index) =>
      parseHost(host, [...path, 'hosts', index]),
    ),
    network,
  };
}

function strings(value: unknown): string[] | null {
  return Array.isArray(value) ? value.map(String) : null;
}

/** Parses a fleet configuration at `path`; see `parseFleetConfiguration`. */
export function parseFleetConfigurationAt(input: unknown, path: FieldPath): FleetConfiguration {
  if (!isPlainObject(input)) {
    throw configurationError(path, 'must be a mapping');
  }

  fleetInput.validate(input, path);
  const at = (key: string): FieldPath => [...path, key];

  return {
    type: 'fleet',
    name: input.name == null ? null : String(input.name),
    placement: (input.placement ?? null) as FleetConfiguration['placement'],
    blocks: (input.blocks ?? 1) as FleetConfiguration['blocks'],
    nodes: input.nodes == null ? null : parseFleetNodes(input.nodes, at('nodes')),
    reservation: input.reservation == null ? null : String(input.reservation),
    resources: input.resources == null ? null : parseResourcesAt(input.resources, at('resources')),
    backends: strings(input.backends),
    regions: strings(input.regions),
    availability_zones: strings(input.availability_zones),
    instance_types: strings(input.instance_types),
    spot_policy: (input.spot_policy ?? null) as FleetConfiguration['spot_policy'],
    retry: parseRetry(input.retry, at('retry')),
    max_price: (input.max_price ?? null) as number | null,
    idle_duration: parseIdleDuration(input.idle_duration, at('idle_duration')),
    tags: parseTags(input.tags, at('tags')),
    backend_options: parseBackendOptions(input.backend_options, at('backend_options')),
    ssh_config: parseSshConfig(input.ssh_config, at('ssh_config')),
    env: input.env === undefined ? {} : parseEnv(input.env, at('env')),
  };
}

/**
 * Parses a `fleet` configuration (cloud or SSH) into the original's serialized shape. The
 * cloud/SSH rules (which fields each kind allows) are checked by `parseFleetSpec`.
 */
export function parseFleetConfiguration(input: unknown): FleetConfiguration {
  return parseFleetConfigurationAt(input, ['configuration']);
}
