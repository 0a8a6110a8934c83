import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Ajv } from 'ajv';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { parseDocument } from 'yaml';
import { decodeStrictBase64, duplicateKeyNames, knownBackendTypes } from '@dstack/core';
import type { BackendProvider, EncryptionKeyConfig } from '@dstack/core';

/** A backend as config.yml lists it; its own fields are checked by its provider. */
export interface ServerConfigBackend {
  type: string;
  [field: string]: unknown;
}

/** `~/.dstack/server/config.yml`, validated. */
export interface ServerConfig {
  projects: { name: string; backends?: ServerConfigBackend[] | null }[];
  encryption?: { keys: EncryptionKeyConfig[] } | null;
  default_permissions?: {
    allow_non_admins_create_projects?: boolean;
    allow_non_admins_manage_ssh_fleets?: boolean;
    allow_managers_manage_secrets?: boolean;
  } | null;
  plugins?: string[] | null;
}

/** A config.yml that cannot be used; the message names the file, each key path and problem. */
export class ServerConfigError extends Error {
  readonly path: string;
  readonly problems: string[];

  constructor(path: string, problems: string[]) {
    super(`Invalid ${path}:\n${problems.map((problem) => `  - ${problem}`).join('\n')}`);
    this.name = 'ServerConfigError';
    this.path = path;
    this.problems = problems;
  }
}

const ajv = new Ajv({ allErrors: true, strict: false });

ajv.addFormat('alphanumeric', /^[a-zA-Z0-9]+$/);
ajv.addFormat('aes-secret', {
  type: 'string',
  validate: (text) => decodeStrictBase64(text)?.length === 32,
});

const aesKeySchema = {
  type: 'object',
  additionalProperties: false,
  required: ['type', 'name', 'secret'],
  properties: {
    type: { const: 'aes' },
    name: { type: 'string', format: 'alphanumeric' },
    secret: { type: 'string', format: 'aes-secret' },
  },
};

const identityKeySchema = {
  type: 'object',
  additionalProperties: false,
  required: ['type'],
  properties: { type: { const: 'identity' } },
};

const schema = {
  type: 'object',
  additionalProperties: false,
  required: ['projects'],
  properties: {
    projects: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name'],
        properties: {
          name: { type: 'string', pattern: '^[a-zA-Z0-9-_]{1,50}$' },
          backends: {
            type: ['array', 'null'],
            items: {
              type: 'object',
              required: ['type'],
              properties: { type: { type: 'string', minLength: 1 } },
            },
          },
        },
      },
    },
    encryption: {
      type: ['object', 'null'],
      additionalProperties: false,
      required: ['keys'],
      properties: {
        keys: {
          type: 'array',
          items: {
            type: 'object',
            required: ['type'],
            properties: { type: { enum: ['aes', 'identity'] } },
            allOf: [
              { if: { properties: { type: { const: 'aes' } } }, then: aesKeySchema },
              { if: { properties: { type: { const: 'identity' } } }, then: identityKeySchema },
            ],
          },
        },
      },
    },
    default_permissions: {
      type: ['object', 'null'],
      additionalProperties: false,
      properties: {
        allow_non_admins_create_projects: { type: 'boolean' },
        allow_non_admins_manage_ssh_fleets: { type: 'boolean' },
        allow_managers_manage_secrets: { type: 'boolean' },
      },
    },
    plugins: { type: ['array', 'null'], items: { type: 'string' } },
  },
};

const validate = ajv.compile(schema);

function keyPath(instancePath: string, extra?: string): string {
  const parts = instancePath === '' ? [] : instancePath.slice(1).split('/');

  if (extra !== undefined) {
    parts.push(extra);
  }

  return (
    parts
      .map((part) => (/^\d+$/.test(part) ? `[${part}]` : `.${part}`))
      .join('')
      .replace(/^\./, '') || '(top level)'
  );
}

function describe(value: unknown): string {
  return JSON.stringify(value) ?? String(value);
}

function problemOf(error: ErrorObject, data: unknown): string | null {
  const params = error.params as Record<string, unknown>;
  const value = error.instancePath
    .slice(1)
    .split('/')
    .filter((part) => part !== '')
    .reduce<unknown>((node, part) => (node as Record<string, unknown> | null)?.[part], data);

  switch (error.keyword) {
    case 'additionalProperties':
      return `${keyPath(error.instancePath, params['additionalProperty'] as string)}: unknown key`;
    case 'required':
      return `${keyPath(error.instancePath, params['missingProperty'] as string)}: ` +
        'required key is missing';
    case 'type':
      return `${keyPath(error.instancePath)}: must be ${String(params['type'])}, ` +
        `got ${describe(value)}`;
    case 'enum':
      return `${keyPath(error.instancePath)}: must be one of ` +
        `${(params['allowedValues'] as unknown[]).map(describe).join(', ')}, ` +
        `got ${describe(value)}`;
    case 'const':
      return null;
    case 'format': {
      if (params['format'] === 'alphanumeric') {
        return `${keyPath(error.instancePath)}: the key name must be alphanumeric, ` +
          `got ${describe(value)}`;
      }

      const decoded = typeof value === 'string' ? decodeStrictBase64(value) : undefined;
      const got = decoded === undefined ? 'not strict base64' : `${decoded.length} bytes`;
      return `${keyPath(error.instancePath)}: the secret must be base64 of exactly 32 bytes ` +
        `(got ${got})`;
    }
    case 'pattern':
      return `${keyPath(error.instancePath)}: must match ${String(params['pattern'])}, ` +
        `got ${describe(value)}`;
    case 'if':
      return null;
    default:
      return `${keyPath(error.instancePath)}: ${error.message ?? 'invalid value'}`;
  }
}

/** Checks a parsed config.yml; throws a ServerConfigError listing every problem. */
export function validateServerConfig(path: string, data: unknown): ServerConfig {
  if (data === null || data === undefined) {
    throw new ServerConfigError(path, ['the file is empty; it needs at least `projects`']);
  }

  const valid = validate(data);
  const problems = (valid ? [] : validate.errors ?? [])
    .map((error) => problemOf(error, data))
    .filter((problem): problem is string => problem !== null);
  problems.push(...duplicateKeyNameProblems(data));

  if (problems.length === 0) {
    return data as unknown as ServerConfig;
  }

  throw new ServerConfigError(path, [...new Set(problems)]);
}

// The key name is written into every value a key encrypts, so two keys of one name make
// their values impossible to tell apart.
function duplicateKeyNameProblems(data: unknown): string[] {
  const keys = (data as { encryption?: { keys?: unknown } } | null)?.encryption?.keys;

  if (!Array.isArray(keys)) {
    return [];
  }

  return duplicateKeyNames(keys).map(({ index, first, name }) =>
    `encryption.keys[${index}].name: the key name ${describe(name)} is already the name of ` +
      `encryption.keys[${first}]; each key needs a name of its own`);
}

const backendValidators = new WeakMap<object, ValidateFunction>();

function backendValidatorOf(schema: object): ValidateFunction {
  let compiled = backendValidators.get(schema);

  if (compiled === undefined) {
    compiled = ajv.compile(schema);
    backendValidators.set(schema, compiled);
  }

  return compiled;
}

const backendKeywords = new Set(['additionalProperties', 'required', 'type', 'enum', 'pattern']);

/**
 * Checks each project's backends against the providers this server has: an unknown type, or
 * a config its provider's schema refuses, is a ServerConfigError naming the key path. A type
 * the original knows but this server lacks is left to the sync, which warns and goes on.
 */
export function checkServerConfigBackends(
  path: string,
  config: ServerConfig,
  providers: readonly BackendProvider[],
): void {
  const problems: string[] = [];

  config.projects.forEach((project, projectIndex) => {
    (project.backends ?? []).forEach((backend, backendIndex) => {
      const at = `/projects/${projectIndex}/backends/${backendIndex}`;
      const provider = providers.find((candidate) => candidate.type === backend.type);

      if (provider === undefined) {
        if (!knownBackendTypes.includes(backend.type)) {
          const available = providers.map((candidate) => candidate.type).join(', ');
          problems.push(
            `${keyPath(`${at}/type`)}: unknown backend type ${describe(backend.type)}` +
              ` (this server has: ${available})`,
          );
        }

        return;
      }

      if (provider.configSchema === undefined) {
        return;
      }

      const check = backendValidatorOf(provider.configSchema);

      if (check(structuredClone(backend))) {
        return;
      }

      for (const error of check.errors ?? []) {
        const located = { ...error, instancePath: `${at}${error.instancePath}` };
        const problem = backendKeywords.has(error.keyword)
          ? problemOf(located, config)
          : `${keyPath(located.instancePath)}: ${error.message ?? 'invalid value'}`;

        if (problem !== null) {
          problems.push(problem);
        }
      }
    });
  });

  if (problems.length > 0) {
    throw new ServerConfigError(path, [...new Set(problems)]);
  }
}

/** Reads and validates config.yml; null when there is no such file. */
export async function loadServerConfig(path: string): Promise<ServerConfig | null> {
  let text: string;

  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      return null;
    }

    throw error;
  }

  const document = parseDocument(text, { uniqueKeys: true });

  if (document.errors.length > 0) {
    throw new ServerConfigError(
      path,
      document.errors.map((error) => `YAML syntax: ${error.message.split('\n')[0] ?? ''}`),
    );
  }

  return validateServerConfig(path, document.toJS());
}

/** The config.yml written at first start: project main with the local backend, no secrets. */
export const defaultServerConfigText = `# The dstack server configuration; see the README.
projects:
  - name: main
    backends:
      # Runs jobs as the server's own user on this machine.
      - type: local
encryption:
  keys: []
`;

/** Writes the default config.yml (and its directory) and returns what it holds. */
export async function writeDefaultServerConfig(path: string): Promise<ServerConfig> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, defaultServerConfigText, { encoding: 'utf8', flag: 'wx' });
  return validateServerConfig(path, parseDocument(defaultServerConfigText).toJS());
}
