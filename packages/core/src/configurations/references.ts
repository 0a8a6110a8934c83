import type { EntityReference, InstanceSelector } from '../domain/configurations.js';
import {
  configurationError,
  isPlainObject,
  type FieldPath,
} from './configuration-error.js';

/** Reads `"name"`, `"project/name"` or `{project?, name}` (already schema-checked). */
export function parseEntityReference(value: unknown, path: FieldPath): EntityReference {
  if (isPlainObject(value)) {
    return {
      project: value.project == null ? null : String(value.project),
      name: String(value.name),
    };
  }

  const parts = String(value).split('/');
  if (parts.some((part) => part === '') || parts.length > 2) {
    throw configurationError(
      path,
      'invalid entity reference. Only `<name>` or `<project>/<name>` formats are allowed',
    );
  }

  return parts.length === 1
    ? { project: null, name: parts[0] }
    : { project: parts[0], name: parts[1] };
}

/** Writes a reference the way clients older than 0.20.14 expect it: `name` or `project/name`. */
export function formatEntityReference(reference: EntityReference | string): string {
  if (typeof reference === 'string') {
    return reference;
  }

  return reference.project === null ? reference.name : `${reference.project}/${reference.name}`;
}

/** Reads an `instances` item: a bare name, `{name}`, `{hostname}` or `{fleet, instance}`. */
export function parseInstanceSelector(value: unknown, path: FieldPath): InstanceSelector {
  if (typeof value === 'string') {
    return { name: value };
  }

  const selector = value as Record<string, unknown>;
  if ('fleet' in selector) {
    return {
      fleet: parseEntityReference(selector.fleet, [...path, 'fleet']),
      instance: Number(selector.instance),
    };
  }

  if ('hostname' in selector) {
    return { hostname: String(selector.hostname) };
  }

  return { name: String(selector.name) };
}
