import type {
  FleetConfiguration,
  ParsedFleetSpec,
  SshHostParams,
  SshParams,
} from '../domain/configurations.js';
import { configurationError, isPlainObject } from './configuration-error.js';
import { parseFleetConfigurationAt } from './fleet-configuration.js';
import { emptyProfile, parseProfileAt } from './profile.js';
import { validateResourceName } from './run-spec.js';
import { createInputSchema } from './schema-validation.js';
import { fleetSpecSchema } from './schemas.js';

const fleetSpecInput = createInputSchema(fleetSpecSchema);

/** Fields only a cloud fleet may set; all null when unset. */
const CLOUD_FIELDS = [
  'nodes',
  'reservation',
  'resources',
  'backends',
  'regions',
  'availability_zones',
  'instance_types',
  'spot_policy',
  'retry',
  'max_price',
  'idle_duration',
  'tags',
  'backend_options',
] as const satisfies readonly (keyof FleetConfiguration)[];

function showFields(fields: readonly string[]): string {
  return `[${fields.map((field) => `'${field}'`).join(', ')}]`;
}

/**
 * Checks the rules that tell cloud and SSH fleets apart: exactly one of `ssh_config` and
 * `nodes`, and no field of the other kind.
 */
export function validateFleetKind(configuration: FleetConfiguration): void {
  const isSsh = configuration.ssh_config !== null;
  if (!isSsh && configuration.nodes === null) {
    throw configurationError(['configuration'], 'no ssh_config or nodes specified');
  }

  if (isSsh && configuration.nodes !== null) {
    throw configurationError(
      ['configuration', 'nodes'],
      'ssh_config and nodes are mutually exclusive',
    );
  }

  const foreign = isSsh
    ? CLOUD_FIELDS.filter((field) => configuration[field] !== null)
    : Object.keys(configuration.env).length > 0
      ? ['env']
      : [];
  if (foreign.length > 0) {
    throw configurationError(
      ['configuration', foreign[0]],
      `${isSsh ? 'SSH' : 'Backend'} fleet configuration does not support the following` +
        ` fields: ${showFields(foreign)}`,
    );
  }
}

function validateSshHosts(config: SshParams): void {
  config.hosts.forEach((host: SshHostParams | string, index) => {
    const path = ['configuration', 'ssh_config', 'hosts', String(index)];
    const hostname = typeof host === 'string' ? host : host.hostname;
    const key = typeof host === 'string' ? null : host.ssh_key;
    const user = typeof host === 'string' ? null : host.user;
    if (config.ssh_key === null && key === null) {
      throw configurationError(path, `no ssh key specified for host ${hostname}`);
    }

    if (config.user === null && user === null) {
      throw configurationError(path, `no ssh user specified for host ${hostname}`);
    }
  });

  const withInternalIp = config.hosts.filter(
    (host) => typeof host !== 'string' && host.internal_ip !== null,
  ).length;
  const hostsPath = ['configuration', 'ssh_config', 'hosts'];
  if (withInternalIp !== 0 && withInternalIp !== config.hosts.length) {
    throw configurationError(hostsPath, 'internal_ip must be specified for all hosts');
  }

  if (withInternalIp > 0 && config.network !== null) {
    throw configurationError(hostsPath, 'internal_ip is mutually exclusive with network');
  }
}

/**
 * Parses a `FleetSpec` and checks what the original checks before planning or applying: the
 * fleet name, the cloud/SSH split and, on SSH fleets, a key and a user for every host.
 */
export function parseFleetSpec(input: unknown): ParsedFleetSpec {
  if (!isPlainObject(input)) {
    throw configurationError([], 'fleet spec must be a mapping');
  }

  fleetSpecInput.validate(input, []);
  const configuration = parseFleetConfigurationAt(input.configuration, ['configuration']);
  if (configuration.name !== null) {
    validateResourceName(configuration.name, ['configuration', 'name']);
  }

  validateFleetKind(configuration);
  if (configuration.ssh_config !== null) {
    validateSshHosts(configuration.ssh_config);
  }

  return {
    configuration,
    configuration_path:
      input.configuration_path == null ? null : String(input.configuration_path),
    profile: input.profile == null ? emptyProfile() : parseProfileAt(input.profile, ['profile']),
    autocreated: input.autocreated === true,
  };
}
