import type { ParsedRunSpec, RunRepoData } from '../domain/configurations.js';
import { configurationError, isPlainObject } from './configuration-error.js';
import { parseProfileAt } from './profile.js';
import { parseRunConfigurationAt } from './run-configuration.js';
import { textOrNull } from './run-configuration-base.js';
import { createInputSchema } from './schema-validation.js';
import { runSpecSchema } from './schemas.js';

type Input = Record<string, unknown>;

/** The pattern of run, fleet and other resource names. */
export const RESOURCE_NAME_PATTERN = /^[a-z][a-z0-9-]{1,40}$/;

const runSpecInput = createInputSchema(runSpecSchema);

/** Throws the original's 400 when `name` is not a valid resource name. */
export function validateResourceName(name: string, field: string[]): void {
  if (!RESOURCE_NAME_PATTERN.test(name)) {
    throw configurationError(
      field,
      `resource name should match regex '${RESOURCE_NAME_PATTERN.source}'`,
    );
  }
}

function parseRepoData(value: unknown): RunRepoData | null {
  if (value == null) {
    return null;
  }

  const data = value as Input;
  if (data.repo_type === 'remote') {
    return {
      repo_type: 'remote',
      repo_name: String(data.repo_name),
      repo_branch: textOrNull(data.repo_branch),
      repo_hash: textOrNull(data.repo_hash),
      repo_config_name: textOrNull(data.repo_config_name),
      repo_config_email: textOrNull(data.repo_config_email),
    };
  }

  if (data.repo_type === 'local') {
    return { repo_type: 'local', repo_dir: String(data.repo_dir) };
  }

  return { repo_type: 'virtual' };
}

/**
 * Parses a `RunSpec` as a client sends it: the configuration by its `type`, the profile, and
 * the repo fields, which come both or neither. Errors name fields relative to the spec
 * (`configuration.resources.memory`). Server defaults are added by `effectiveRunSpec`.
 */
export function parseRunSpec(input: unknown): ParsedRunSpec {
  if (!isPlainObject(input)) {
    throw configurationError([], 'run spec must be a mapping');
  }

  runSpecInput.validate(input, []);
  const runName = textOrNull(input.run_name);
  if (runName !== null) {
    validateResourceName(runName, ['run_name']);
  }

  const repoId = textOrNull(input.repo_id);
  const repoData = parseRepoData(input.repo_data);
  if (repoId === null && repoData !== null) {
    throw configurationError(['repo_data'], 'repo_data must not be set if repo_id is not set');
  }

  if (repoId !== null && repoData === null) {
    throw configurationError(['repo_id'], 'repo_id must not be set if repo_data is not set');
  }

  return {
    run_name: runName,
    repo_id: repoId,
    repo_data: repoData,
    repo_code_hash: textOrNull(input.repo_code_hash),
    repo_dir: textOrNull(input.repo_dir),
    file_archives: (Array.isArray(input.file_archives) ? input.file_archives : []).map(
      (archive) => ({
        id: String((archive as Input).id).toLowerCase(),
        path: String((archive as Input).path),
      }),
    ),
    working_dir: textOrNull(input.working_dir),
    configuration_path: textOrNull(input.configuration_path),
    configuration: parseRunConfigurationAt(input.configuration, ['configuration']),
    profile: input.profile == null ? null : parseProfileAt(input.profile, ['profile']),
    ssh_key_pub: textOrNull(input.ssh_key_pub),
  };
}
