import type { Range } from '../domain/resources.js';
import type {
  BaseRunConfiguration,
  ProbeConfig,
  RateLimit,
  ReplicaGroup,
  ScalingSpec,
  ServiceConfiguration,
  ServiceModel,
} from '../domain/configurations.js';
import { configurationError, type FieldPath } from './configuration-error.js';
import { parseDuration } from './duration.js';
import { maxNodeCount } from './limits.js';
import { parseServicePort } from './ports.js';
import { parseIntRange } from './range.js';
import { parseEntityReference } from './references.js';
import { parseResourcesAt } from './resources.js';
import { parsePython, stringList, textOrNull } from './run-configuration-base.js';

type Input = Record<string, unknown>;

const SCALING_WINDOWS_SECONDS = [30, 60, 300];
const GROUP_NAME = /^[a-z0-9][a-z0-9-]{0,39}$/;
const MAX_PROBE_URL_LENGTH = 2048;

/** Renders a list of names the way the original's messages do: `['a', 'b']`. */
export function showNames(names: readonly string[]): string {
  return `[${names.map((name) => `'${name}'`).join(', ')}]`;
}

function parseScaling(value: unknown, path: FieldPath): ScalingSpec | null {
  if (value == null) {
    return null;
  }

  const scaling = value as Input;
  const window = scaling.window == null ? null : parseDuration(scaling.window, [...path, 'window']);
  if (window !== null && !SCALING_WINDOWS_SECONDS.includes(window)) {
    throw configurationError([...path, 'window'], 'window must be one of: `30s`, `60s`, `300s`');
  }

  const delay = (key: string, fallback: number): number =>
    scaling[key] == null ? fallback : parseDuration(scaling[key], [...path, key]);

  return {
    metric: 'rps',
    target: Number(scaling.target),
    window,
    scale_up_delay: delay('scale_up_delay', 300),
    scale_down_delay: delay('scale_down_delay', 600),
  };
}

/** Replica counts need a maximum; a missing minimum means zero. */
function parseReplicaRange(value: unknown, path: FieldPath): Range {
  const range = parseIntRange(value, path);
  if (range.max === null) {
    throw configurationError(path, 'the maximum number of replicas is required');
  }

  const min = range.min ?? 0;
  if (min < 0) {
    throw configurationError(path, 'the minimum number of replicas must be >= 0');
  }

  if (range.max > maxNodeCount) {
    throw configurationError(path, `at most ${maxNodeCount} replicas are supported`);
  }

  return { min, max: range.max };
}

function checkScalingMatchesReplicas(
  replicas: Range,
  scaling: ScalingSpec | null,
  path: FieldPath,
): void {
  if (replicas.min !== replicas.max && scaling === null) {
    throw configurationError(
      [...path, 'scaling'],
      'when you set `replicas` to a range, ensure to specify `scaling`',
    );
  }

  if (replicas.min === replicas.max && scaling !== null) {
    throw configurationError(
      [...path, 'scaling'],
      'to use `scaling`, `replicas` must be set to a range',
    );
  }
}

function parseModel(value: unknown): ServiceModel | null {
  if (value == null) {
    return null;
  }

  if (typeof value === 'string') {
    return { type: 'chat', name: value, format: 'openai', prefix: '/v1' };
  }

  const model = value as Input;
  if (model.format === 'tgi') {
    return {
      type: 'chat',
      name: String(model.name),
      format: 'tgi',
      chat_template: textOrNull(model.chat_template),
      eos_token: textOrNull(model.eos_token),
    };
  }

  return {
    type: 'chat',
    name: String(model.name),
    format: 'openai',
    prefix: model.prefix == null ? '/v1' : String(model.prefix),
  };
}

function parseRateLimits(value: unknown, path: FieldPath): RateLimit[] {
  const limits = (Array.isArray(value) ? value : []).map((raw): RateLimit => {
    const limit = raw as Input;
    const key = (limit.key ?? { type: 'ip_address' }) as Input;

    return {
      prefix: limit.prefix == null ? '/' : String(limit.prefix),
      key:
        key.type === 'header'
          ? { type: 'header', header: String(key.header) }
          : { type: 'ip_address' },
      rps: Number(limit.rps),
      burst: limit.burst == null ? 0 : Number(limit.burst),
    };
  });
  const prefixes = limits.map((limit) => limit.prefix);
  const duplicates = [...new Set(prefixes.filter((prefix, i) => prefixes.indexOf(prefix) !== i))];
  if (duplicates.length > 0) {
    throw configurationError(
      path,
      `prefixes ${showNames(duplicates)} are used more than once.` +
        ' Each rate limit should have a unique path prefix',
    );
  }

  return limits;
}

function parseProbe(raw: unknown, path: FieldPath): ProbeConfig {
  const probe = raw as Input;
  const url = textOrNull(probe.url);
  if (url !== null) {
    if (!url.startsWith('/')) {
      throw configurationError([...path, 'url'], 'must start with `/`');
    }

    if (url.length > MAX_PROBE_URL_LENGTH) {
      throw configurationError([...path, 'url'], 'cannot be longer than 2048 characters');
    }

    if (/\p{C}/u.test(url)) {
      throw configurationError([...path, 'url'], 'cannot contain non-printable characters');
    }
  }

  const seconds = (key: string): number | null => {
    if (probe[key] == null) {
      return null;
    }

    const value = parseDuration(probe[key], [...path, key]);
    if (value < 1) {
      throw configurationError([...path, key], `probe ${key} cannot be shorter than 1s`);
    }

    return value;
  };
  const method = (probe.method ?? null) as ProbeConfig['method'];
  const body = textOrNull(probe.body);
  if (body !== null && (method === 'get' || method === 'head')) {
    throw configurationError(
      [...path, 'body'],
      `cannot set request body for the \`${method}\` method`,
    );
  }

  return {
    type: 'http',
    url,
    method,
    headers: (Array.isArray(probe.headers) ? probe.headers : []).map((header) => ({
      name: String((header as Input).name),
      value: String((header as Input).value),
    })),
    body,
    timeout: seconds('timeout'),
    interval: seconds('interval'),
    ready_after: (probe.ready_after ?? null) as number | null,
    until_ready: (probe.until_ready ?? null) as boolean | null,
  };
}

function parseProbes(value: unknown, path: FieldPath): ProbeConfig[] | null {
  if (!Array.isArray(value)) {
    return null;
  }

  const probes = value.map((probe, index) => parseProbe(probe, [...path, index]));
  const keys = probes.map((probe) => JSON.stringify(probe));
  if (new Set(keys).size !== keys.length) {
    throw configurationError(path, 'probes must be unique');
  }

  return probes;
}

function parseReplicaGroup(raw: unknown, index: number, path: FieldPath): ReplicaGroup {
  const group = raw as Input;
  const name = group.name == null ? String(index) : String(group.name);
  if (!GROUP_NAME.test(name)) {
    throw configurationError(
      [...path, 'name'],
      `resource name should match regex '${GROUP_NAME.source}'`,
    );
  }

  const replicasInput = group.replicas !== undefined ? group.replicas : group.count;
  if (replicasInput == null) {
    throw configurationError([...path, 'replicas'], 'field required');
  }

  const image = textOrNull(group.image);
  const python = parsePython(group.python, [...path, 'python']);
  if (python !== null && image) {
    throw configurationError(
      [...path, 'python'],
      '`image` and `python` are mutually exclusive within a replica group',
    );
  }

  if (group.docker === true) {
    const nvcc = group.nvcc === true ? 'nvcc' : null;
    const other = image ? 'image' : python !== null ? 'python' : nvcc;
    if (other !== null) {
      throw configurationError(
        [...path, 'docker'],
        `\`${other}\` and \`docker\` are mutually exclusive within a replica group`,
      );
    }

    if (group.privileged === false) {
      throw configurationError(
        [...path, 'privileged'],
        '`privileged: false` is incompatible with `docker: true` within a replica group',
      );
    }
  }

  const replicas = parseReplicaRange(replicasInput, [...path, 'replicas']);
  const scaling = parseScaling(group.scaling, [...path, 'scaling']);
  checkScalingMatchesReplicas(replicas, scaling, path);
  const router = group.router as Input | null | undefined;

  return {
    name,
    count: replicas,
    scaling,
    resources: parseResourcesAt(group.resources, [...path, 'resources']),
    spot_policy: (group.spot_policy ?? null) as ReplicaGroup['spot_policy'],
    reservation: textOrNull(group.reservation),
    commands: stringList(group.commands),
    image,
    python,
    nvcc: (group.nvcc ?? null) as boolean | null,
    docker: (group.docker ?? null) as boolean | null,
    privileged: (group.privileged ?? null) as boolean | null,
    router:
      router == null ? null : { type: router.type === 'dynamo' ? 'dynamo' : 'sglang' },
  };
}

type GroupField =
  | 'image'
  | 'docker'
  | 'privileged'
  | 'python'
  | 'nvcc'
  | 'spot_policy'
  | 'reservation';

function checkGroupsAgainstService(
  base: BaseRunConfiguration,
  groups: ReplicaGroup[],
  path: FieldPath,
): void {
  const serviceSets: Record<GroupField, boolean> = {
    image: base.image !== null,
    docker: base.docker === true,
    privileged: base.privileged,
    python: base.python !== null,
    nvcc: base.nvcc === true,
    spot_policy: base.spot_policy !== null,
    reservation: base.reservation !== null,
  };
  const groupsSetting = (field: GroupField): string[] =>
    groups.filter((group) => group[field] !== null).map((group) => group.name ?? '');
  for (const field of Object.keys(serviceSets) as GroupField[]) {
    const conflicting = serviceSets[field] ? groupsSetting(field) : [];
    if (conflicting.length > 0) {
      throw configurationError(
        [...path, field],
        `\`${field}\` is set at both the service level and in replica group(s)` +
          ` ${showNames(conflicting)}. Set \`${field}\` in one place only`,
      );
    }
  }

  const sources: GroupField[] = ['image', 'docker', 'python', 'nvcc'];
  const forbidden: Record<string, GroupField[]> = {
    image: ['docker', 'python', 'nvcc'],
    docker: ['image', 'python', 'nvcc'],
    python: ['image', 'docker'],
    nvcc: ['image', 'docker'],
  };
  for (const source of sources) {
    if (!serviceSets[source]) {
      continue;
    }

    for (const field of forbidden[source]) {
      const conflicting = groupsSetting(field);
      if (conflicting.length > 0) {
        throw configurationError(
          [...path, source],
          `service-level \`${source}\` conflicts with group-level \`${field}\` in replica` +
            ` group(s) ${showNames(conflicting)}. These image-source fields are mutually exclusive`,
        );
      }
    }
  }

  for (const group of groups) {
    if (group.commands.length === 0 && group.image === null && base.image === null) {
      throw configurationError(
        [...path, 'replicas'],
        `replica group '${group.name}': either \`commands\` or \`image\` must be set in the` +
          ' group, or `image` at the service level',
      );
    }
  }

  const routers = groups.filter((group) => group.router !== null);
  if (routers.length > 1) {
    throw configurationError(
      [...path, 'replicas'],
      'at most one replica group may specify `router`',
    );
  }

  if (routers.length === 1 && (routers[0].count.min !== 1 || routers[0].count.max !== 1)) {
    throw configurationError(
      [...path, 'replicas'],
      'for now replica group with `router` must have `replicas: 1`',
    );
  }
}

function parseReplicaGroups(value: unknown[], path: FieldPath): ReplicaGroup[] {
  if (value.length === 0) {
    throw configurationError(path, '`groups` cannot be an empty list');
  }

  const groups = value.map((group, index) => parseReplicaGroup(group, index, [...path, index]));
  const totalReplicas = groups.reduce((total, group) => total + (group.count.max ?? 0), 0);
  if (totalReplicas > maxNodeCount) {
    throw configurationError(
      path,
      `the replica groups ask for up to ${totalReplicas} replicas,` +
        ` at most ${maxNodeCount} are supported`,
    );
  }

  const names = groups.map((group) => group.name ?? '');
  const duplicates = [...new Set(names.filter((name, index) => names.indexOf(name) !== index))];
  if (duplicates.length > 0) {
    throw configurationError(
      path,
      `duplicate replica group names found: ${showNames(duplicates)}.` +
        ' Each replica group must have a unique name',
    );
  }

  return groups;
}

/** Normalises the service-specific fields over an already normalised base. */
export function normaliseService(
  input: Input,
  base: BaseRunConfiguration,
  path: FieldPath,
): ServiceConfiguration {
  const at = (key: string): FieldPath => [...path, key];
  const commands = stringList(input.commands);
  // Old clients send replica groups under `replicas` as a list.
  let groupsInput = input.groups;
  let replicasInput = input.replicas;
  let groupsPath = at('groups');
  if (groupsInput == null && Array.isArray(replicasInput)) {
    groupsInput = replicasInput;
    replicasInput = undefined;
    groupsPath = at('replicas');
  }

  if (groupsInput != null && replicasInput != null) {
    throw configurationError(at('replicas'), '`replicas` and `groups` are mutually exclusive');
  }

  const scaling = parseScaling(input.scaling, at('scaling'));
  const replicas = replicasInput == null ? null : parseReplicaRange(replicasInput, at('replicas'));
  if (replicas !== null) {
    checkScalingMatchesReplicas(replicas, scaling, path);
  }

  let groups: ReplicaGroup[] | null = null;
  if (Array.isArray(groupsInput)) {
    groups = parseReplicaGroups(groupsInput, groupsPath);
    if (scaling !== null) {
      throw configurationError(
        at('scaling'),
        'top-level `scaling` is not allowed when `groups` is set.' +
          ' Specify `scaling` in each replica group instead',
      );
    }

    if (commands.length > 0) {
      throw configurationError(
        at('commands'),
        'top-level `commands` is not allowed when `groups` is set.' +
          ' Specify `commands` in each replica group instead',
      );
    }

    checkGroupsAgainstService(base, groups, path);
  } else if (commands.length === 0 && base.image === null) {
    throw configurationError(at('commands'), 'either `commands` or `image` must be set');
  }

  const gateway = input.gateway;

  return {
    type: 'service',
    ...base,
    commands,
    port: parseServicePort(input.port, at('port')),
    gateway:
      gateway == null || typeof gateway === 'boolean'
        ? (gateway ?? null)
        : parseEntityReference(gateway, at('gateway')),
    strip_prefix: input.strip_prefix !== false,
    model: parseModel(input.model),
    https: (input.https ?? null) as ServiceConfiguration['https'],
    auth: input.auth !== false,
    scaling,
    rate_limits: parseRateLimits(input.rate_limits, at('rate_limits')),
    probes: parseProbes(input.probes, at('probes')),
    replicas: groups ?? replicas,
  };
}
