import { Document, isScalar, parseDocument, visit } from 'yaml';
import type { CoreContext } from '../context.js';
import { ServerClientError } from '../errors/server-errors.js';
import { createBackend, getBackendConfigInfo, updateBackend } from './backends.js';
import type { BackendConfigInput, BackendsScope } from './backends.js';

/** `{type}/get_yaml` on the wire. */
export interface WireBackendYaml {
  name: string;
  config_yaml: string;
}

/** Parses a backend config sent as YAML; 400 "Error parsing YAML" when it is not YAML. */
export function parseBackendYaml(text: string): BackendConfigInput {
  let value: unknown;

  try {
    // Silent: a warning would reach the server's stderr with the sender's text in it.
    const document = parseDocument(text, { logLevel: 'silent' });

    // An unknown tag (`!!js/function`) is an error to the YAML loader the original uses.
    if (document.errors.length > 0 ||
      document.warnings.some((warning) => warning.code === 'TAG_RESOLVE_FAILED')) {
      throw new ServerClientError('Error parsing YAML');
    }

    value = document.toJS();
  } catch {
    throw new ServerClientError('Error parsing YAML');
  }

  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ServerClientError('The backend config must be a mapping with a type');
  }

  const config = value as Record<string, unknown>;

  if (typeof config.type !== 'string') {
    throw new ServerClientError('The backend config must have a string type');
  }

  return config as BackendConfigInput;
}

function withoutNulls(value: unknown): unknown {
  if (Array.isArray(value)) {
    return value.map(withoutNulls);
  }

  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([, item]) => item !== null && item !== undefined)
        .map(([key, item]) => [key, withoutNulls(item)]),
    );
  }

  return value;
}

/**
 * A config as the original dumps it: null fields left out, keys in their order, mappings in
 * block style and lists of scalars in flow style.
 */
export function backendConfigToYaml(config: Record<string, unknown>): string {
  const document = new Document(withoutNulls(config));

  visit(document, {
    Seq(_key, node) {
      const first = node.items[0];
      node.flow = first === undefined || isScalar(first);
    },
  });

  return document.toString({ lineWidth: 0, flowCollectionPadding: false });
}

/** `backends/create_yaml`: creates the backend the YAML describes. */
export async function createBackendYaml(
  ctx: CoreContext,
  scope: BackendsScope,
  text: string,
): Promise<void> {
  await createBackend(ctx, scope, parseBackendYaml(text));
}

/** `backends/update_yaml`: updates the backend the YAML describes. */
export async function updateBackendYaml(
  ctx: CoreContext,
  scope: BackendsScope,
  text: string,
): Promise<void> {
  await updateBackend(ctx, scope, parseBackendYaml(text));
}

/** `backends/{type}/get_yaml`: the config with credentials, as YAML. */
export async function getBackendYaml(
  ctx: CoreContext,
  scope: BackendsScope,
  type: string,
): Promise<WireBackendYaml> {
  const config = await getBackendConfigInfo(ctx, scope, type);

  return { name: type, config_yaml: backendConfigToYaml(config) };
}
