/**
 * JSON Schemas of the input forms the original accepts: types, enums, bounds and the closed
 * set of keys of every model. Shorthand strings (ranges, durations, resources) are accepted
 * here as any value and parsed by hand afterwards, where the message can say what is wrong.
 */

import { maxNodeCount } from './limits.js';

type Schema = Record<string, unknown>;

export const anyValue: Schema = {};
export const string: Schema = { type: 'string' };
/** A string field; YAML numbers are accepted and turned into strings, as the original does. */
export const text: Schema = { type: ['string', 'number'] };
export const boolean: Schema = { type: 'boolean' };
export const integer: Schema = { type: 'integer' };

export function nullable(schema: Schema): Schema {
  if (typeof schema.type === 'string' && Object.keys(schema).length === 1) {
    return { type: [schema.type, 'null'] };
  }

  if (Array.isArray(schema.type) && Object.keys(schema).length === 1) {
    return { type: [...(schema.type as string[]), 'null'] };
  }

  return { anyOf: [{ type: 'null' }, schema] };
}

export function object(properties: Record<string, Schema>, required: string[] = []): Schema {
  return { type: 'object', properties, required, additionalProperties: false };
}

export function arrayOf(items: Schema, extra: Schema = {}): Schema {
  return { type: 'array', items, ...extra };
}

export function oneOfValues(values: readonly string[]): Schema {
  return { enum: [...values] };
}

export function anyOf(...schemas: Schema[]): Schema {
  return { anyOf: schemas };
}

const port: Schema = { type: 'integer', minimum: 1, maximum: 65535 };

export const portMappingObject = object(
  { local_port: nullable(port), container_port: port },
  ['container_port'],
);

/** `8080`, `"80:8080"`, `"*:8080"` or `{local_port?, container_port}`. */
export const portMapping = anyOf(
  port,
  { type: 'string', pattern: '^(?:[0-9]+|\\*):[0-9]+$' },
  portMappingObject,
);

export const entityReference = anyOf(
  string,
  object({ project: nullable(text), name: text }, ['name']),
);

export const spotPolicies = ['spot', 'on-demand', 'auto'] as const;
export const retryEvents = ['no-capacity', 'interruption', 'error'] as const;

export const retry = nullable(
  anyOf(
    boolean,
    object({
      on_events: nullable(arrayOf(oneOfValues(retryEvents))),
      duration: anyValue,
    }),
  ),
);

/** Backend types are checked by shape: plugins may add their own beside the built-in ones. */
export const backendType: Schema = { type: 'string', pattern: '^[a-z][a-z0-9_-]*$' };

export const tags = nullable({ type: 'object', additionalProperties: text });

export const backendOptions = nullable(
  arrayOf(
    object(
      {
        type: { const: 'vastai' },
        offer_order: nullable(oneOfValues(['score', 'price'])),
        min_reliability: nullable({ type: 'number', minimum: 0, maximum: 1 }),
        min_score: nullable({ type: 'integer', minimum: 0 }),
      },
      ['type'],
    ),
  ),
);

const instanceSelector = anyOf(
  string,
  object({ name: { type: 'string', minLength: 1 } }, ['name']),
  object({ hostname: { type: 'string', minLength: 1 } }, ['hostname']),
  object({ fleet: entityReference, instance: { type: 'integer', minimum: 0 } }, [
    'fleet',
    'instance',
  ]),
);

/** The properties of `ProfileParams`, shared by profiles and run configurations. */
export const profileParamsProperties: Record<string, Schema> = {
  backends: nullable(arrayOf(backendType)),
  regions: nullable(arrayOf(text)),
  availability_zones: nullable(arrayOf(text)),
  instance_types: nullable(arrayOf(text)),
  reservation: nullable(text),
  spot_policy: nullable(oneOfValues(spotPolicies)),
  retry,
  max_duration: anyValue,
  stop_duration: anyValue,
  max_price: nullable({ type: 'number', exclusiveMinimum: 0 }),
  creation_policy: nullable(oneOfValues(['reuse', 'reuse-or-create'])),
  idle_duration: anyValue,
  utilization_policy: nullable(
    object(
      {
        min_gpu_utilization: { type: 'integer', minimum: 0, maximum: 100 },
        time_window: anyValue,
      },
      ['min_gpu_utilization', 'time_window'],
    ),
  ),
  startup_order: nullable(oneOfValues(['any', 'master-first', 'workers-first'])),
  stop_criteria: nullable(oneOfValues(['all-done', 'master-done'])),
  schedule: nullable(object({ cron: anyOf(string, arrayOf(string)) }, ['cron'])),
  fleets: nullable(arrayOf(entityReference)),
  instances: nullable(arrayOf(instanceSelector, { minItems: 1 })),
  tags,
  backend_options: backendOptions,
};

export const profileSchema = object({
  name: text,
  default: boolean,
  ...profileParamsProperties,
});

const mountPoint = anyOf(
  string,
  object({ name: anyOf(text, arrayOf(text)), path: string }, ['name', 'path']),
  object({ instance_path: string, path: string, optional: boolean }, ['instance_path', 'path']),
);

const repoSpec = anyOf(
  string,
  object({
    local_path: nullable(string),
    url: nullable(string),
    branch: nullable(text),
    hash: nullable(text),
    path: string,
    if_exists: oneOfValues(['error', 'skip']),
  }),
);

const filePathMapping = anyOf(string, object({ local_path: string, path: string }, [
  'local_path',
  'path',
]));

const commands = arrayOf(string);
const pythonVersion = nullable({ type: ['string', 'number'] });

function baseRunProperties(type: string): Record<string, Schema> {
  return {
    ...profileParamsProperties,
    type: { const: type },
    name: nullable(text),
    image: nullable(text),
    user: nullable(text),
    privileged: boolean,
    entrypoint: nullable(string),
    working_dir: nullable(string),
    home_dir: string,
    registry_auth: nullable(object({ username: text, password: text }, ['username', 'password'])),
    python: pythonVersion,
    nvcc: nullable(boolean),
    single_branch: nullable(boolean),
    env: anyValue,
    shell: nullable(string),
    resources: anyValue,
    priority: nullable({ type: 'integer', minimum: 0, maximum: 100 }),
    volumes: arrayOf(mountPoint),
    docker: nullable(boolean),
    repos: arrayOf(repoSpec),
    files: arrayOf(filePathMapping),
    dstack: boolean,
    setup: commands,
  };
}

const nodeGroup = object({
  name: nullable(text),
  nodes: { type: 'integer', minimum: 1, maximum: maxNodeCount },
  resources: anyValue,
  commands,
  ports: arrayOf(portMapping),
});

export const taskSchema = object(
  {
    ...baseRunProperties('task'),
    commands,
    ports: arrayOf(portMapping),
    nodes: nullable({ type: 'integer', minimum: 1, maximum: maxNodeCount }),
    groups: nullable(arrayOf(nodeGroup)),
  },
  ['type'],
);

export const devEnvironmentSchema = object(
  {
    ...baseRunProperties('dev-environment'),
    ports: arrayOf(portMapping),
    ide: nullable(oneOfValues(['vscode', 'cursor', 'windsurf', 'zed'])),
    version: nullable(text),
    init: commands,
    inactivity_duration: anyValue,
  },
  ['type'],
);

const scaling = nullable(
  object(
    {
      metric: { const: 'rps' },
      target: { type: 'number', exclusiveMinimum: 0 },
      window: anyValue,
      scale_up_delay: anyValue,
      scale_down_delay: anyValue,
    },
    ['metric', 'target'],
  ),
);

const model = nullable(
  anyOf(
    string,
    object(
      {
        type: { const: 'chat' },
        name: text,
        format: { const: 'openai' },
        prefix: string,
      },
      ['name', 'format'],
    ),
    object(
      {
        type: { const: 'chat' },
        name: text,
        format: { const: 'tgi' },
        chat_template: nullable(string),
        eos_token: nullable(string),
      },
      ['name', 'format'],
    ),
  ),
);

const rateLimit = object(
  {
    prefix: { type: 'string', maxLength: 4094, pattern: '^/[^\\s\\\\{}]*$' },
    key: anyOf(
      object({ type: { const: 'ip_address' } }),
      object(
        {
          type: { const: 'header' },
          header: { type: 'string', maxLength: 500, pattern: '^[a-zA-Z0-9-_]+$' },
        },
        ['header'],
      ),
    ),
    rps: { type: 'number', minimum: 1 / 60 },
    burst: { type: 'integer', minimum: 0 },
  },
  ['rps'],
);

const probe = object(
  {
    type: { const: 'http' },
    url: nullable(string),
    method: nullable(oneOfValues(['get', 'post', 'put', 'delete', 'patch', 'head'])),
    headers: arrayOf(
      object(
        {
          name: { type: 'string', minLength: 1, maxLength: 256 },
          value: { type: 'string', minLength: 1, maxLength: 2048 },
        },
        ['name', 'value'],
      ),
      { maxItems: 16 },
    ),
    body: nullable({ type: 'string', minLength: 1, maxLength: 2048 }),
    timeout: anyValue,
    interval: anyValue,
    ready_after: nullable({ type: 'integer', minimum: 1 }),
    until_ready: nullable(boolean),
  },
  ['type'],
);

export const replicaGroupSchema = object({
  name: nullable(text),
  replicas: anyValue,
  count: anyValue,
  scaling,
  resources: anyValue,
  spot_policy: nullable(oneOfValues(spotPolicies)),
  reservation: nullable(text),
  commands,
  image: nullable(text),
  python: pythonVersion,
  nvcc: nullable(boolean),
  docker: nullable(boolean),
  privileged: nullable(boolean),
  router: nullable(object({ type: oneOfValues(['sglang', 'dynamo']) })),
});

export const serviceSchema = object(
  {
    ...baseRunProperties('service'),
    commands,
    port: anyOf(
      port,
      { type: 'string', pattern: '^[0-9]+:[0-9]+$' },
      portMappingObject,
    ),
    gateway: nullable(anyOf(boolean, entityReference)),
    strip_prefix: boolean,
    model,
    https: nullable(anyOf(boolean, { const: 'auto' })),
    auth: boolean,
    scaling,
    rate_limits: arrayOf(rateLimit),
    probes: nullable(arrayOf(probe)),
    replicas: anyValue,
    groups: nullable(arrayOf(replicaGroupSchema)),
  },
  ['type', 'port'],
);

const sshKey = nullable(object({ public: string, private: nullable(string) }, ['public']));

// The original takes any integer as an SSH port; here one outside 1..65535 is refused up front
// instead of leaving an instance that can never connect.
const sshProxy = nullable(
  object(
    {
      hostname: string,
      port: nullable(port),
      user: string,
      identity_file: string,
      ssh_key: sshKey,
    },
    ['hostname', 'user', 'identity_file'],
  ),
);

const blocks = anyOf({ const: 'auto' }, { type: 'integer', minimum: 1 });

const sshHost = anyOf(
  string,
  object(
    {
      hostname: string,
      port: nullable(port),
      user: nullable(string),
      identity_file: nullable(string),
      proxy_jump: sshProxy,
      internal_ip: nullable(string),
      ssh_key: sshKey,
      blocks: nullable(blocks),
    },
    ['hostname'],
  ),
);

export const fleetSchema = object(
  {
    type: { const: 'fleet' },
    name: nullable(text),
    placement: nullable(oneOfValues(['any', 'cluster'])),
    blocks,
    nodes: anyValue,
    reservation: nullable(text),
    resources: anyValue,
    backends: nullable(arrayOf(backendType)),
    regions: nullable(arrayOf(text)),
    availability_zones: nullable(arrayOf(text)),
    instance_types: nullable(arrayOf(text)),
    spot_policy: nullable(oneOfValues(spotPolicies)),
    retry,
    max_price: nullable({ type: 'number', exclusiveMinimum: 0 }),
    idle_duration: anyValue,
    tags,
    backend_options: backendOptions,
    ssh_config: nullable(
      object(
        {
          user: nullable(string),
          port: nullable(port),
          identity_file: nullable(string),
          ssh_key: sshKey,
          proxy_jump: sshProxy,
          hosts: arrayOf(sshHost),
          network: nullable(string),
        },
        ['hosts'],
      ),
    ),
    env: anyValue,
  },
  ['type'],
);

const repoData = anyOf(
  object(
    {
      repo_type: { const: 'remote' },
      repo_name: text,
      repo_branch: nullable(text),
      repo_hash: nullable(text),
      repo_config_name: nullable(text),
      repo_config_email: nullable(text),
    },
    ['repo_type', 'repo_name'],
  ),
  object({ repo_type: { const: 'local' }, repo_dir: string }, ['repo_type', 'repo_dir']),
  object({ repo_type: { const: 'virtual' } }, ['repo_type']),
);

const uuid = {
  type: 'string',
  pattern: '^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$',
};

export const runSpecSchema = object(
  {
    run_name: nullable(text),
    repo_id: nullable(text),
    repo_data: nullable(repoData),
    repo_code_hash: nullable(text),
    repo_dir: nullable(string),
    file_archives: arrayOf(object({ id: uuid, path: string }, ['id', 'path'])),
    working_dir: nullable(string),
    configuration_path: nullable(string),
    configuration: { type: 'object' },
    profile: nullable({ type: 'object' }),
    ssh_key_pub: nullable(string),
  },
  ['configuration'],
);

export const fleetSpecSchema = object(
  {
    configuration: { type: 'object' },
    configuration_path: nullable(string),
    profile: nullable({ type: 'object' }),
    autocreated: boolean,
  },
  ['configuration'],
);
