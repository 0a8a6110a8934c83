import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import {
  effectiveRunSpec,
  parseFleetConfiguration,
  parseFleetSpec,
  parseRunConfiguration,
  parseRunSpec,
  ServerClientError,
} from '@dstack/core';

const FIXTURES = join(import.meta.dirname, '../../../../../shared/fixtures/configs');

function fixture(name: string): Record<string, unknown> {
  return parse(readFileSync(`${FIXTURES}/${name}.dstack.yml`, 'utf8')) as Record<string, unknown>;
}

const resources = {
  cpu: { arch: null, count: { min: 2, max: null } },
  memory: { min: 8, max: null },
  shm_size: null,
  gpu: {
    vendor: null,
    name: null,
    count: { min: 0, max: null },
    memory: null,
    total_memory: null,
    compute_capability: null,
  },
  disk: { size: { min: 100, max: null } },
};

const profileParams = {
  backends: null,
  regions: null,
  availability_zones: null,
  instance_types: null,
  reservation: null,
  spot_policy: null,
  retry: null,
  max_duration: null,
  stop_duration: null,
  max_price: null,
  creation_policy: null,
  idle_duration: null,
  utilization_policy: null,
  startup_order: null,
  stop_criteria: null,
  schedule: null,
  fleets: null,
  instances: null,
  tags: null,
  backend_options: null,
};

const base = {
  ...profileParams,
  name: null,
  image: null,
  user: null,
  privileged: false,
  entrypoint: null,
  working_dir: null,
  home_dir: '/root',
  registry_auth: null,
  python: null,
  nvcc: null,
  single_branch: null,
  env: {},
  shell: null,
  resources,
  priority: null,
  volumes: [],
  docker: null,
  repos: [],
  files: [],
  dstack: false,
  setup: [],
};

const task = { ...base, type: 'task', commands: [], ports: [], nodes: null, groups: null };

describe('run configuration fixtures', () => {
  it('task-hello', () => {
    expect(parseRunConfiguration(fixture('task-hello'))).toEqual({
      ...task,
      name: 'hello',
      env: { GREETING: 'hello' },
      commands: [
        'echo "$GREETING from node $DSTACK_NODE_RANK of $DSTACK_NODES_NUM"',
        'for i in 1 2 3; do echo "line $i"; sleep 1; done',
        'echo "to stderr" >&2',
      ],
    });
  });

  it('task-http', () => {
    expect(parseRunConfiguration(fixture('task-http'))).toEqual({
      ...task,
      name: 'http-task',
      python: '3.11',
      commands: ['python3 -m http.server 8000'],
      ports: [{ local_port: 8000, container_port: 8000 }],
      max_duration: 120,
    });
  });

  it('service-http', () => {
    expect(parseRunConfiguration(fixture('service-http'))).toEqual({
      ...base,
      type: 'service',
      name: 'http-service',
      python: '3.11',
      commands: ['python3 -m http.server 8000'],
      port: { local_port: 80, container_port: 8000 },
      gateway: null,
      strip_prefix: true,
      model: null,
      https: null,
      auth: false,
      scaling: null,
      rate_limits: [],
      probes: null,
      replicas: null,
    });
  });

  it('task-multinode', () => {
    expect(parseRunConfiguration(fixture('task-multinode'))).toEqual({
      ...task,
      name: 'two-nodes',
      nodes: 2,
      commands: [
        'echo "rank=$DSTACK_NODE_RANK nodes=$DSTACK_NODES_NUM master=$DSTACK_MASTER_NODE_IP"',
        'echo "ips=$DSTACK_NODES_IPS"',
      ],
      resources: { ...resources, cpu: { arch: null, count: { min: 1, max: null } } },
    });
  });

  it('task-image', () => {
    expect(parseRunConfiguration(fixture('task-image'))).toEqual({
      ...task,
      name: 'needs-image',
      image: 'python:3.12-slim',
      commands: ['python -c "print(42)"'],
    });
  });

  it('task-gpu', () => {
    expect(parseRunConfiguration(fixture('task-gpu'))).toEqual({
      ...task,
      name: 'needs-gpu',
      commands: ['nvidia-smi'],
      resources: {
        ...resources,
        memory: { min: 512, max: null },
        gpu: {
          vendor: null,
          name: ['A100'],
          count: { min: 8, max: 8 },
          memory: { min: 80, max: 80 },
          total_memory: null,
          compute_capability: null,
        },
      },
    });
  });

  it('task-retry', () => {
    expect(parseRunConfiguration(fixture('task-retry'))).toEqual({
      ...task,
      name: 'flaky',
      commands: ['echo "attempt starting"', 'exit 3'],
      retry: { on_events: ['error'], duration: 60 },
    });
  });

  it('task-secret', () => {
    expect(parseRunConfiguration(fixture('task-secret'))).toEqual({
      ...task,
      name: 'uses-secret',
      env: { API_KEY: '${{ secrets.api_key }}' },
      commands: ['test -n "$API_KEY" && echo "secret length ${#API_KEY}"'],
    });
  });

  it('task-long-output is not valid YAML as written; its intended content parses', () => {
    // A plain scalar may not contain ": ", and line 7 does ('wide: '); PyYAML fails the same.
    expect(() => fixture('task-long-output')).toThrow(/line 7/);
    const commands = [
      `python3 -c "import sys; [print('row', i, 'x' * (i % 300)) for i in range(50000)]"`,
      "printf 'no newline at end'",
      "printf '\\xff\\xfe invalid utf-8 bytes\\n'",
      `python3 -c "print('wide: ' + 'é' * 40000)"`,
    ];
    expect(parseRunConfiguration({ type: 'task', name: 'chatty', commands })).toEqual({
      ...task,
      name: 'chatty',
      commands,
    });
  });

  it('dev-environment', () => {
    expect(parseRunConfiguration(fixture('dev-environment'))).toEqual({
      ...base,
      type: 'dev-environment',
      name: 'my-dev',
      ports: [],
      ide: 'vscode',
      version: null,
      init: [],
      inactivity_duration: 1800,
    });
  });

  it('task-hello as a run spec gets the server defaults', () => {
    const spec = parseRunSpec({ run_name: 'hello', configuration: fixture('task-hello') });
    const effective = effectiveRunSpec(spec);
    expect(spec.repo_id).toBeNull();
    expect(effective.repo_id).toBe('none');
    expect(effective.repo_data).toEqual({ repo_type: 'virtual' });
    expect(effective.configuration.priority).toBe(0);
    expect(effective.configuration.type === 'task' && effective.configuration.nodes).toBe(1);
    expect(effective.configuration.resources.gpu).toEqual({
      ...resources.gpu,
      vendor: 'nvidia',
    });
  });

  it('task-image keeps the GPU vendor open for its own image', () => {
    const effective = effectiveRunSpec(parseRunSpec({ configuration: fixture('task-image') }));
    expect(effective.configuration.resources.gpu.vendor).toBeNull();
  });

  it('task-gpu gets NVIDIA from the A100 name', () => {
    const effective = effectiveRunSpec(parseRunSpec({ configuration: fixture('task-gpu') }));
    expect(effective.configuration.resources.gpu.vendor).toBe('nvidia');
  });
});

const fleetBase = {
  type: 'fleet',
  name: null,
  placement: null,
  blocks: 1,
  nodes: null,
  reservation: null,
  resources: null,
  backends: null,
  regions: null,
  availability_zones: null,
  instance_types: null,
  spot_policy: null,
  retry: null,
  max_price: null,
  idle_duration: null,
  tags: null,
  backend_options: null,
  ssh_config: null,
  env: {},
};

describe('fleet configuration fixtures', () => {
  it('fleet-local', () => {
    expect(parseFleetConfiguration(fixture('fleet-local'))).toEqual({
      ...fleetBase,
      name: 'laptop',
      nodes: { min: 0, max: 2 },
      backends: ['local'],
      idle_duration: 600,
    });
  });

  it('fleet-ssh', () => {
    expect(parseFleetConfiguration(fixture('fleet-ssh'))).toEqual({
      ...fleetBase,
      name: 'on-prem',
      placement: 'any',
      ssh_config: {
        user: 'dstack',
        port: null,
        identity_file: '~/.ssh/id_ed25519',
        ssh_key: null,
        proxy_jump: null,
        hosts: [
          '127.0.0.1',
          {
            hostname: '127.0.0.2',
            port: 2222,
            user: null,
            identity_file: null,
            proxy_jump: null,
            internal_ip: null,
            ssh_key: null,
            blocks: null,
          },
        ],
        network: null,
      },
    });
  });

  it('fleet-local as a spec passes the cloud fleet rules', () => {
    const spec = parseFleetSpec({ configuration: fixture('fleet-local'), profile: {} });
    expect(spec.autocreated).toBe(false);
    expect(spec.configuration_path).toBeNull();
    expect(spec.profile).toEqual({ name: '', default: false, ...profileParams });
    expect(spec.configuration.nodes).toEqual({ min: 0, max: 2 });
  });

  it('fleet-ssh as a spec needs the key the client reads from identity_file', () => {
    let error: unknown;
    try {
      parseFleetSpec({ configuration: fixture('fleet-ssh'), profile: {} });
    } catch (caught) {
      error = caught;
    }

    expect(error).toBeInstanceOf(ServerClientError);
    expect((error as ServerClientError).message).toBe(
      'configuration.ssh_config.hosts.0: no ssh key specified for host 127.0.0.1',
    );
    const configuration = {
      ...fixture('fleet-ssh'),
      ssh_config: {
        ...(fixture('fleet-ssh').ssh_config as object),
        ssh_key: { public: 'ssh-ed25519 AAAA', private: 'PRIVATE' },
      },
    };
    const spec = parseFleetSpec({ configuration, profile: {}, autocreated: false });
    expect(spec.configuration.ssh_config?.ssh_key).toEqual({
      public: 'ssh-ed25519 AAAA',
      private: 'PRIVATE',
    });
    expect(spec.configuration.ssh_config?.hosts).toHaveLength(2);
  });
});

describe('stored specs parse back to themselves', () => {
  const runFixtures = [
    'task-hello',
    'task-http',
    'service-http',
    'task-multinode',
    'task-image',
    'task-gpu',
    'task-retry',
    'task-secret',
    'dev-environment',
  ];

  it.each(runFixtures)('%s', (name) => {
    const stored = JSON.parse(
      JSON.stringify(effectiveRunSpec(parseRunSpec({ configuration: fixture(name) }))),
    );
    expect(effectiveRunSpec(parseRunSpec(stored))).toEqual(stored);
  });

  it('fleet-local', () => {
    const stored = JSON.parse(
      JSON.stringify(parseFleetSpec({ configuration: fixture('fleet-local'), profile: {} })),
    );
    expect(stored.configuration.nodes).toEqual({ min: 0, max: 2 });
    expect(parseFleetSpec(stored)).toEqual(stored);
  });
});
