import { isDeepStrictEqual } from 'node:util';
import type { RunSpec } from '../domain/run.js';
import { ServerClientError } from '../errors/server-errors.js';

/** Top-level run spec fields every run may change in place. */
const updatableSpecFields = ['configuration_path', 'configuration'];

/** Top-level run spec fields a configuration type may change too (services roll them out). */
const typeUpdatableSpecFields: Record<string, readonly string[]> = {
  service: ['repo_data', 'repo_code_hash', 'file_archives', 'working_dir'],
};

/** Configuration fields every run may change in place. */
const updatableConfigurationFields = ['priority'];

/**
 * Configuration fields a configuration type may change too. For services, `replicas` and
 * `scaling` only rescale; the others need new replicas (a rolling deployment) once they
 * change what a replica's job spec is.
 */
const typeUpdatableConfigurationFields: Record<string, readonly string[]> = {
  'dev-environment': ['inactivity_duration'],
  service: [
    'replicas', 'scaling',
    'port', 'probes', 'resources', 'volumes', 'docker', 'files', 'image', 'user', 'privileged',
    'entrypoint', 'working_dir', 'python', 'nvcc', 'single_branch', 'env', 'shell', 'commands',
  ],
};

/** A service's `https` default: unset and `true` mean the same. */
const serviceHttpsDefault = true;

/** `null` and a missing key are the same value of a model field. */
function sameValue(a: unknown, b: unknown): boolean {
  return isDeepStrictEqual(a ?? null, b ?? null);
}

/** The fields whose values differ, in the order of `next`'s keys, then `current`'s. */
function changedFields(
  current: Record<string, unknown>,
  next: Record<string, unknown>,
): string[] {
  const keys = [...new Set([...Object.keys(next), ...Object.keys(current)])];
  return keys.filter((key) => !sameValue(current[key], next[key]));
}

/** A list of names as the original prints a list of strings. */
function showList(names: readonly string[]): string {
  return `[${names.map((name) => `'${name}'`).join(', ')}]`;
}

interface RouterGroup {
  name: string | null;
  router: { type: string } | null;
}

function routerGroupOf(configuration: Record<string, unknown>): RouterGroup | null {
  const groups = configuration.replicas;

  if (!Array.isArray(groups)) {
    return null;
  }

  return (groups as RouterGroup[]).find((group) => group.router != null) ?? null;
}

/** Router groups cannot be added, removed, swapped or re-typed in place. */
function checkRouterGroups(current: RunSpec, next: RunSpec): void {
  if (current.configuration.type !== 'service' || next.configuration.type !== 'service') {
    return;
  }

  const before = routerGroupOf(current.configuration);
  const after = routerGroupOf(next.configuration);

  if ((before?.name ?? null) !== (after?.name ?? null)) {
    throw new ServerClientError('Cannot update router replica groups in place');
  }

  if (before !== null && after !== null && before.router!.type !== after.router!.type) {
    throw new ServerClientError('Cannot change router.type in place');
  }

  const dynamo = before?.router?.type === 'dynamo' || after?.router?.type === 'dynamo';

  if (!dynamo) {
    return;
  }

  // Dynamo workers keep the router's address from their start: nothing may re-provision it.
  const rolled = typeUpdatableConfigurationFields.service!
    .filter((field) => field !== 'replicas' && field !== 'scaling')
    .filter((field) => !sameValue(current.configuration[field], next.configuration[field]));
  const rolledSpec = typeUpdatableSpecFields.service!
    .filter((field) => !sameValue(current[field], next[field]));

  if (!sameValue(before, after) || rolled.length > 0 || rolledSpec.length > 0) {
    throw new ServerClientError('Cannot update a Dynamo router replica group in place');
  }
}

/**
 * The fields an active run with `current` may change to become `next` in place, as
 * `section.field` paths, or a ServerClientError naming what cannot change in place.
 */
export function checkCanUpdateRunSpec(current: RunSpec, next: RunSpec): string[] {
  const type = String(next.configuration.type);
  const specChanges = changedFields(current, next);
  const allowedSpec = [...updatableSpecFields, ...(typeUpdatableSpecFields[type] ?? [])];

  if (specChanges.some((field) => !allowedSpec.includes(field))) {
    throw new ServerClientError(
      `Failed to update fields ${showList(specChanges)}. Can only update ${showList(allowedSpec)}.`,
    );
  }

  checkRouterGroups(current, next);

  if (current.configuration.type !== next.configuration.type) {
    throw new ServerClientError(
      `Configuration type changed from ${String(current.configuration.type)} to ${type}, ` +
        'cannot update',
    );
  }

  const allowed = [
    ...updatableConfigurationFields,
    ...(typeUpdatableConfigurationFields[type] ?? []),
  ];

  // Moved local files are fine while the uploaded archives stay the same, in the same order.
  if (sameValue(current.file_archives, next.file_archives)) {
    allowed.push('files');
  }

  const httpsDefault = (value: unknown) => value == null || value === serviceHttpsDefault;

  if (type === 'service' && httpsDefault(current.configuration.https) &&
    httpsDefault(next.configuration.https)) {
    allowed.push('https');
  }

  const configurationChanges = changedFields(current.configuration, next.configuration);

  if (configurationChanges.some((field) => !allowed.includes(field))) {
    throw new ServerClientError(
      `Failed to update fields ${showList(configurationChanges)}. ` +
        `Can only update ${showList(allowed)}`,
    );
  }

  return [
    ...specChanges.filter((field) => field !== 'configuration'),
    ...configurationChanges.map((field) => `configuration.${field}`),
  ];
}

/** Whether an active run with `current` can take `next` in place. */
export function canUpdateRunSpec(current: RunSpec, next: RunSpec): boolean {
  try {
    checkCanUpdateRunSpec(current, next);
    return true;
  } catch (error) {
    if (error instanceof ServerClientError) {
      return false;
    }

    throw error;
  }
}
