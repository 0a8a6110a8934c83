import { Ajv } from 'ajv';
import type { ErrorObject, ValidateFunction } from 'ajv';
import type { CoreContext } from '../context.js';
import {
  BackendNotAvailableError,
  DecryptionError,
  ForbiddenError,
  ResourceExistsError,
  ResourceNotExistsError,
  ServerClientError,
} from '../errors/server-errors.js';
import type { BackendProvider, BackendSettings } from '../ports/backend-provider.js';
import type { StateAccess } from '../ports/state-store.js';
import type { BackendRecord, ProjectRecord, UserRecord } from '../records.js';
import { newId } from '../util/ids.js';
import { isGlobalAdmin } from './access.js';

/** A backend config as the API and config.yml give it: `type`, its fields and `creds`. */
export type BackendConfigInput = Record<string, unknown> & { type: string };

/** Who changes the backends of which project. */
export interface BackendsScope {
  user: Pick<UserRecord, 'id' | 'globalRole'>;
  project: Pick<ProjectRecord, 'id' | 'name'>;
}

/** A backend as `projects/{p}/get` lists it: no credentials. */
export interface WireProjectBackend {
  name: string;
  config: Record<string, unknown>;
}

/** A backend ready to use: its provider and its decrypted settings. */
export interface ProjectBackend {
  type: string;
  provider: BackendProvider;
  settings: BackendSettings;
}

/** The backend types of the original, to tell "not installed here" from "no such type". */
export const knownBackendTypes: readonly string[] = [
  'amddevcloud', 'aws', 'azure', 'cloudrift', 'crusoe', 'cudo', 'datacrunch', 'digitalocean',
  'dstack', 'gcp', 'hotaisle', 'jarvislabs', 'kubernetes', 'lambda', 'local', 'nebius', 'oci',
  'remote', 'runpod', 'slurm', 'tensordock', 'vastai', 'verda', 'vultr',
];

/** Backends whose instances run as the server's own user: only a global admin may add them. */
const hostBackendTypes = new Set(['local']);

const ajv = new Ajv({ allErrors: true, strict: false, useDefaults: true });
const validators = new WeakMap<object, ValidateFunction>();

function validatorOf(schema: object): ValidateFunction {
  let validate = validators.get(schema);

  if (validate === undefined) {
    validate = ajv.compile(schema);
    validators.set(schema, validate);
  }

  return validate;
}

function describeSchemaError(error: ErrorObject): string {
  const path = error.instancePath === ''
    ? 'config'
    : error.instancePath.slice(1).replace(/\//g, '.');
  const params = error.params as Record<string, unknown>;

  if (error.keyword === 'additionalProperties') {
    return `${path}.${String(params.additionalProperty)}: extra fields not permitted`;
  }

  if (error.keyword === 'required') {
    return `${path}.${String(params.missingProperty)}: field required`;
  }

  return `${path}: ${error.message ?? 'invalid value'}`;
}

/** The provider of a backend type; 400 `backend_not_available` when none is registered. */
export function backendProviderOf(ctx: CoreContext, type: string): BackendProvider {
  const provider = ctx.providers.get(type);

  if (provider === undefined) {
    throw new BackendNotAvailableError();
  }

  return provider;
}

/**
 * Checks a config against its provider's schema (filling defaults in place); 400 with every
 * problem. Messages name fields, never their values.
 */
export function checkBackendConfigSchema(provider: BackendProvider, config: unknown): void {
  if (provider.configSchema === undefined) {
    return;
  }

  const validate = validatorOf(provider.configSchema);

  if (!validate(config)) {
    const problems = (validate.errors ?? []).map(describeSchemaError);
    throw new ServerClientError(`Invalid ${provider.type} backend config: ${problems.join('; ')}`);
  }
}

function schemaFields(provider: BackendProvider | undefined): string[] {
  const schema = provider?.configSchema as { properties?: Record<string, unknown> } | undefined;

  return Object.keys(schema?.properties ?? {});
}

/** The wire emits every field of a config model; fields that were not given are null. */
function withAllFields(
  provider: BackendProvider | undefined,
  config: Record<string, unknown>,
  options: { creds: boolean },
): Record<string, unknown> {
  const full: Record<string, unknown> = {};

  for (const field of schemaFields(provider)) {
    if (field !== 'creds' || options.creds) {
      full[field] = null;
    }
  }

  return { ...full, ...config };
}

// TODO: only `creds` is encrypted, so a kubeconfig stays in the plain config as in the
// original; it matters once a kubernetes provider is registered.
function splitCreds(config: BackendConfigInput): {
  plain: Record<string, unknown>;
  creds: unknown;
} {
  const { creds, ...plain } = config;

  return { plain, creds };
}

function encryptJson(ctx: CoreContext, value: unknown): string | null {
  return value === undefined ? null : ctx.cipher.encrypt(JSON.stringify(value));
}

function checkMayConfigure(scope: BackendsScope, type: string): void {
  if (hostBackendTypes.has(type) && !isGlobalAdmin(scope.user)) {
    throw new ForbiddenError(
      `Access denied: only global admins can configure the ${type} backend,`
        + ' because it runs jobs as the server\'s own user',
    );
  }
}

/**
 * Validates a config and has its provider check the credentials (400 `invalid_credentials`
 * with the fields when they are wrong); returns the record to store, credentials encrypted.
 */
async function buildBackendRecord(
  ctx: CoreContext,
  scope: BackendsScope,
  input: BackendConfigInput,
  id: string,
): Promise<BackendRecord> {
  const provider = backendProviderOf(ctx, input.type);
  checkMayConfigure(scope, input.type);
  // Keep the user's input as given; validation fills in defaults on a copy.
  const source = splitCreds(structuredClone(input));
  const effective = structuredClone(input);
  checkBackendConfigSchema(provider, effective);
  const { plain, creds } = splitCreds(effective);
  const credsObject = creds === undefined || creds === null
    ? null
    : (creds as Record<string, unknown>);
  await provider.checkConfig?.({
    projectName: scope.project.name,
    config: plain,
    creds: credsObject,
  });

  return {
    id,
    projectId: scope.project.id,
    type: input.type,
    config: plain,
    auth: encryptJson(ctx, creds),
    sourceConfig: source.plain,
    sourceAuth: encryptJson(ctx, source.creds),
  };
}

async function findBackend(
  access: StateAccess,
  projectId: string,
  type: string,
): Promise<BackendRecord | undefined> {
  return access.findOne('backends', { where: { projectId, type } });
}

/** Adds a backend to the project: 400 `resource_exists` when the type is already there. */
export async function createBackend(
  ctx: CoreContext,
  scope: BackendsScope,
  input: BackendConfigInput,
): Promise<Record<string, unknown>> {
  const record = await buildBackendRecord(ctx, scope, input, newId());

  await ctx.store.transaction(async (tx) => {
    if ((await findBackend(tx, scope.project.id, input.type)) !== undefined) {
      throw new ResourceExistsError();
    }

    await tx.insert('backends', record);
  });

  ctx.logger.info({ projectName: scope.project.name, backend: input.type }, 'backend created');

  return withAllFields(ctx.providers.get(input.type), input, { creds: true });
}

/** Replaces a backend's config: 400 `resource_not_exists` when the type is not there. */
export async function updateBackend(
  ctx: CoreContext,
  scope: BackendsScope,
  input: BackendConfigInput,
): Promise<Record<string, unknown>> {
  backendProviderOf(ctx, input.type);
  const existing = await findBackend(ctx.store, scope.project.id, input.type);

  if (existing === undefined) {
    throw new ResourceNotExistsError();
  }

  const record = await buildBackendRecord(ctx, scope, input, existing.id);
  const { id: _id, ...patch } = record;
  const changed = await ctx.store.update('backends', { id: existing.id }, patch);

  if (changed === 0) {
    throw new ResourceNotExistsError();
  }

  ctx.logger.info({ projectName: scope.project.name, backend: input.type }, 'backend updated');

  return withAllFields(ctx.providers.get(input.type), input, { creds: true });
}

// TODO: active volumes are not checked (no volumes table yet); it matters once volumes exist.
/** The types among `types` that active instances of the project still use. */
export async function backendTypesInUse(
  access: StateAccess,
  projectId: string,
  types: readonly string[],
): Promise<string[]> {
  const instances = await access.find('instances', {
    where: { projectId, deleted: false, status: { ne: 'terminated' }, backend: { in: types } },
  });

  return types.filter((type) => instances.some((instance) => instance.backend === type));
}

/**
 * Deletes the project's backends of these types; types that are not configured are ignored.
 * 400 for the `dstack` backend and for a backend that active instances still use.
 */
export async function deleteBackends(
  ctx: CoreContext,
  scope: BackendsScope,
  types: readonly string[],
): Promise<void> {
  if (types.includes('dstack')) {
    throw new ServerClientError('Cannot delete dstack backend');
  }

  await ctx.store.transaction(async (tx) => {
    const [inUse] = await backendTypesInUse(tx, scope.project.id, types);

    if (inUse !== undefined) {
      throw new ServerClientError(
        `Backend ${inUse} has active instances. Delete instances before deleting the backend.`,
      );
    }

    await tx.delete('backends', { projectId: scope.project.id, type: { in: [...types] } });
  });

  ctx.logger.info({ projectName: scope.project.name, backends: types }, 'backends deleted');
}

function decryptJson(ctx: CoreContext, stored: string | null): unknown {
  return stored === null ? undefined : JSON.parse(ctx.cipher.decrypt(stored)) as unknown;
}

/**
 * The backend's config with its credentials (`{type}/config_info`); 400 `resource_not_exists`
 * when it is missing or its credentials cannot be decrypted (logged as a warning).
 */
export async function getBackendConfigInfo(
  ctx: CoreContext,
  scope: BackendsScope,
  type: string,
): Promise<Record<string, unknown>> {
  const provider = backendProviderOf(ctx, type);
  const record = await findBackend(ctx.store, scope.project.id, type);

  if (record === undefined) {
    throw new ResourceNotExistsError();
  }

  let creds: unknown;

  try {
    creds = decryptJson(ctx, record.auth);
  } catch (error) {
    if (!(error instanceof DecryptionError)) {
      throw error;
    }

    ctx.logger.warn(
      { projectName: scope.project.name, backend: type, keyName: error.keyName },
      `Failed to decrypt creds for ${type} backend`,
    );
    throw new ResourceNotExistsError();
  }

  const config = { ...(record.config as Record<string, unknown>), type };

  return withAllFields(provider, creds === undefined ? config : { ...config, creds }, {
    creds: true,
  });
}

/**
 * The project's backends as `projects/{p}/get` shows them: `{name, config}` without
 * credentials, by type. The projects service calls this to fill `Project.backends`.
 */
export async function listProjectBackendsForWire(
  ctx: CoreContext,
  projectId: string,
  access: StateAccess = ctx.store,
): Promise<WireProjectBackend[]> {
  const records = await access.find('backends', {
    where: { projectId },
    orderBy: [['type', 'asc']],
  });

  return records.map((record) => ({
    name: record.type,
    config: withAllFields(
      ctx.providers.get(record.type),
      { ...(record.config as Record<string, unknown>), type: record.type },
      { creds: false },
    ),
  }));
}

/**
 * The project's usable backends with decrypted credentials. A backend without a provider or
 * with credentials no key can decrypt is left out with a warning, as in the original.
 */
export async function listProjectBackends(
  ctx: CoreContext,
  project: Pick<ProjectRecord, 'id' | 'name'>,
  access: StateAccess = ctx.store,
): Promise<ProjectBackend[]> {
  const records = await access.find('backends', {
    where: { projectId: project.id },
    orderBy: [['type', 'asc']],
  });
  const backends: ProjectBackend[] = [];

  for (const record of records) {
    const provider = ctx.providers.get(record.type);
    const fields = { projectName: project.name, backend: record.type };

    if (provider === undefined) {
      ctx.logger.warn(fields, `Backend ${record.type} not available and will be ignored`);
      continue;
    }

    try {
      const creds = decryptJson(ctx, record.auth) as Record<string, unknown> | undefined;
      backends.push({
        type: record.type,
        provider,
        settings: {
          projectName: project.name,
          config: record.config as Record<string, unknown>,
          creds: creds ?? null,
        },
      });
    } catch (error) {
      if (!(error instanceof DecryptionError)) {
        throw error;
      }

      ctx.logger.warn(
        { ...fields, keyName: error.keyName },
        `Failed to decrypt creds for ${record.type} backend. Backend will be ignored.`,
      );
    }
  }

  return backends;
}

/**
 * The user's input for a stored backend (source config and decrypted source credentials),
 * or undefined when it cannot be read; config.yml sync compares against it.
 */
export function storedSourceConfig(
  ctx: CoreContext,
  record: BackendRecord,
): Record<string, unknown> | undefined {
  if (record.sourceConfig === null || typeof record.sourceConfig !== 'object') {
    return undefined;
  }

  try {
    const creds = decryptJson(ctx, record.sourceAuth);
    const plain = record.sourceConfig as Record<string, unknown>;

    return creds === undefined ? { ...plain } : { ...plain, creds };
  } catch (error) {
    if (error instanceof DecryptionError || error instanceof SyntaxError) {
      return undefined;
    }

    throw error;
  }
}
