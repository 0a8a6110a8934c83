import type { FleetRecord, InstanceRecord } from '../records.js';
import { toWireTime } from '../util/time.js';
import type { Instance } from './instance.js';
import { instanceToWire } from './instance.js';

export type FleetStatus = 'submitted' | 'active' | 'terminating' | 'terminated' | 'failed';

/** The wire `FleetSpec`: the configuration and profile as the server normalised them. */
export interface FleetSpec {
  configuration: Record<string, unknown>;
  configuration_path: string | null;
  profile: Record<string, unknown>;
  autocreated: boolean;
}

/** The wire `Fleet` (§4.8 of the API spec). */
export interface Fleet {
  id: string;
  name: string;
  project_name: string;
  spec: FleetSpec;
  created_at: string;
  status: FleetStatus;
  status_message: string | null;
  instances: Instance[];
}

/**
 * A copy of a fleet spec with every SSH private key set to null, as responses carry it.
 */
export function redactFleetSpec(spec: FleetSpec): FleetSpec {
  const sshConfig = spec.configuration.ssh_config as Record<string, unknown> | null | undefined;

  if (sshConfig === null || sshConfig === undefined) {
    return spec;
  }

  const redacted = withoutKeys(sshConfig);

  if (Array.isArray(redacted.hosts)) {
    redacted.hosts = redacted.hosts.map((host: unknown) =>
      host !== null && typeof host === 'object'
        ? withoutKeys(host as Record<string, unknown>)
        : host,
    );
  }

  return { ...spec, configuration: { ...spec.configuration, ssh_config: redacted } };
}

/** Copies an SSH connection object with its own key and its proxy jump's key set to null. */
function withoutKeys(source: Record<string, unknown>): Record<string, unknown> {
  const copy: Record<string, unknown> = { ...source, ssh_key: null };

  if (copy.proxy_jump !== null && typeof copy.proxy_jump === 'object') {
    copy.proxy_jump = { ...(copy.proxy_jump as Record<string, unknown>), ssh_key: null };
  }

  return copy;
}

/** Serializes a fleet row and its non-deleted instances (sorted by number) for the wire. */
export function fleetToWire(
  record: FleetRecord,
  projectName: string,
  instances: readonly InstanceRecord[],
): Fleet {
  const visible = instances
    .filter((instance) => !instance.deleted)
    .sort((a, b) => a.instanceNum - b.instanceNum);

  return {
    id: record.id,
    name: record.name,
    project_name: projectName,
    spec: redactFleetSpec(record.spec as FleetSpec),
    created_at: toWireTime(record.createdAt),
    status: record.status as FleetStatus,
    status_message: record.statusMessage,
    instances: visible.map((instance) => instanceToWire(instance, projectName, record.name)),
  };
}
