import {
  effectiveRunSpec,
  parseRunSpec,
  requirementsFromRunSpec,
} from '../configurations/index.js';
import type { Requirements } from '../domain/resources.js';
import type { RunSpec } from '../domain/run.js';
import { ServerClientError } from '../errors/server-errors.js';
import type { UserRecord } from '../records.js';

/**
 * Validates a run spec from a request and fills the server's defaults: the normalised
 * configuration, and the user's own public key when the spec carries none.
 */
export function normalizeRunSpec(input: unknown, user: UserRecord): RunSpec {
  const parsed = effectiveRunSpec(parseRunSpec(input)) as unknown as RunSpec;
  const configName = parsed.configuration.name;
  // The CLI copies `name` into `run_name`; other clients may send only the configuration.
  const spec: RunSpec = parsed.run_name === null && typeof configName === 'string'
    ? { ...parsed, run_name: configName }
    : parsed;

  if (spec.ssh_key_pub === null || spec.ssh_key_pub === undefined || spec.ssh_key_pub === '') {
    if (user.sshPublicKey === null) {
      throw new ServerClientError('ssh_key_pub is not set and the user has no SSH key');
    }

    return { ...spec, ssh_key_pub: user.sshPublicKey };
  }

  return spec;
}

/** What every job of the run needs from an instance. */
export function runRequirements(spec: RunSpec): Requirements {
  return requirementsFromRunSpec(spec as never);
}
