import type {
  BaseRunConfiguration,
  DevEnvironmentConfiguration,
  NodeGroup,
  RunConfiguration,
  TaskConfiguration,
} from '../domain/configurations.js';
import { configurationError, isPlainObject, type FieldPath } from './configuration-error.js';
import { parseInactivityDuration } from './duration.js';
import { maxNodeCount } from './limits.js';
import { parsePortMapping } from './ports.js';
import { parseResourcesAt } from './resources.js';
import {
  normaliseBaseRunConfiguration,
  stringList,
  textOrNull,
} from './run-configuration-base.js';
import { createInputSchema } from './schema-validation.js';
import { devEnvironmentSchema, serviceSchema, taskSchema } from './schemas.js';
import { normaliseService, showNames } from './service-configuration.js';

type Input = Record<string, unknown>;

const RUN_TYPES = ['dev-environment', 'task', 'service'] as const;
const GROUP_NAME = /^[a-z0-9][a-z0-9-]{0,39}$/;

const inputSchemas = {
  task: createInputSchema(taskSchema),
  service: createInputSchema(serviceSchema),
  'dev-environment': createInputSchema(devEnvironmentSchema),
};

function parsePorts(value: unknown, path: FieldPath) {
  return (Array.isArray(value) ? value : []).map((port, index) =>
    parsePortMapping(port, [...path, index]),
  );
}

function parseNodeGroups(value: unknown[], path: FieldPath): NodeGroup[] {
  if (value.length === 0) {
    throw configurationError(path, '`groups` cannot be an empty list');
  }

  const groups = value.map((raw, index): NodeGroup => {
    const group = raw as Input;
    const name = group.name == null ? String(index) : String(group.name);
    if (!GROUP_NAME.test(name)) {
      throw configurationError(
        [...path, index, 'name'],
        `node group name should match regex '${GROUP_NAME.source}'`,
      );
    }

    return {
      name,
      nodes: group.nodes == null ? 1 : Number(group.nodes),
      resources: parseResourcesAt(group.resources, [...path, index, 'resources']),
      commands: stringList(group.commands),
      ports: parsePorts(group.ports, [...path, index, 'ports']),
    };
  });
  const totalNodes = groups.reduce((total, group) => total + group.nodes, 0);
  if (totalNodes > maxNodeCount) {
    throw configurationError(
      path,
      `the node groups ask for ${totalNodes} nodes, at most ${maxNodeCount} are supported`,
    );
  }

  const names = groups.map((group) => group.name ?? '');
  const duplicates = [...new Set(names.filter((name, index) => names.indexOf(name) !== index))];
  if (duplicates.length > 0) {
    throw configurationError(
      path,
      `duplicate node group names found: ${showNames(duplicates)}.` +
        ' Each node group must have a unique name',
    );
  }

  return groups;
}

function normaliseTask(
  input: Input,
  base: BaseRunConfiguration,
  path: FieldPath,
): TaskConfiguration {
  const at = (key: string): FieldPath => [...path, key];
  if (input.groups != null && input.nodes != null) {
    throw configurationError(at('groups'), '`nodes` and `groups` are mutually exclusive');
  }

  const commands = stringList(input.commands);
  const ports = parsePorts(input.ports, at('ports'));
  const groups = Array.isArray(input.groups) ? parseNodeGroups(input.groups, at('groups')) : null;
  if (groups === null) {
    if (commands.length === 0 && base.image === null) {
      throw configurationError(at('commands'), 'either `commands` or `image` must be set');
    }
  } else {
    const topLevel: [string, boolean, string][] = [
      ['commands', commands.length > 0, 'commands'],
      ['ports', ports.length > 0, 'ports'],
      ['entrypoint', base.entrypoint !== null, 'commands'],
    ];
    for (const [field, isSet, instead] of topLevel) {
      if (isSet) {
        throw configurationError(
          at(field),
          `top-level \`${field}\` is not allowed when \`groups\` is set.` +
            ` Specify \`${instead}\` in each node group instead`,
        );
      }
    }

    for (const group of groups) {
      if (group.commands.length === 0 && base.image === null) {
        throw configurationError(
          at('groups'),
          `node group '${group.name}': either \`commands\` must be set in the group,` +
            ' or `image` at the task level',
        );
      }
    }
  }

  return {
    type: 'task',
    ...base,
    commands,
    ports,
    nodes: (input.nodes ?? null) as number | null,
    groups,
  };
}

function normaliseDevEnvironment(
  input: Input,
  base: BaseRunConfiguration,
  path: FieldPath,
): DevEnvironmentConfiguration {
  const at = (key: string): FieldPath => [...path, key];
  if (base.entrypoint !== null) {
    throw configurationError(at('entrypoint'), 'entrypoint is not supported for dev-environment');
  }

  const ide = (input.ide ?? null) as DevEnvironmentConfiguration['ide'];
  const version = textOrNull(input.version);
  if (version && ide === null) {
    throw configurationError(at('version'), '`version` requires `ide` to be set');
  }

  if (ide === 'windsurf' && version && !/^.+@[a-f0-9]+$/.test(version)) {
    throw configurationError(
      at('version'),
      `invalid Windsurf version format: \`${version}\`. Expected format: \`version@commit\``,
    );
  }

  const inactivity = parseInactivityDuration(input.inactivity_duration, at('inactivity_duration'));
  if (base.dstack && inactivity !== null) {
    throw configurationError(
      at('dstack'),
      '`dstack` is not supported together with `inactivity_duration`',
    );
  }

  return {
    type: 'dev-environment',
    ...base,
    ports: parsePorts(input.ports, at('ports')),
    ide,
    version,
    init: stringList(input.init),
    inactivity_duration: inactivity,
  };
}

/** Parses a run configuration at `path`; see `parseRunConfiguration`. */
export function parseRunConfigurationAt(input: unknown, path: FieldPath): RunConfiguration {
  if (!isPlainObject(input)) {
    throw configurationError(path, 'must be a mapping');
  }

  const type = input.type;
  if (!(RUN_TYPES as readonly unknown[]).includes(type)) {
    throw configurationError([...path, 'type'], `must be one of: ${RUN_TYPES.join(', ')}`);
  }

  const runType = type as (typeof RUN_TYPES)[number];
  inputSchemas[runType].validate(input, path);
  const base = normaliseBaseRunConfiguration(input, path);
  if (runType === 'task') {
    return normaliseTask(input, base, path);
  }

  if (runType === 'service') {
    return normaliseService(input, base, path);
  }

  return normaliseDevEnvironment(input, base, path);
}

/**
 * Parses a `task`, `service` or `dev-environment` configuration, as the client sends it or as
 * a user writes it, into the original's serialized shape. Throws a 400 `ServerClientError`
 * naming the field (`configuration.<field>`) on bad input.
 */
export function parseRunConfiguration(input: unknown): RunConfiguration {
  return parseRunConfigurationAt(input, ['configuration']);
}
