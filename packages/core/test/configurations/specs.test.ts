import { describe, expect, it } from 'vitest';
import {
  effectiveRunSpec,
  emptyProfile,
  mergedFleetProfile,
  mergedProfile,
  parseFleetConfiguration,
  parseFleetNodes,
  parseFleetSpec,
  parseProfile,
  parseRunSpec,
  requirementsFromRunSpec,
  retryPolicy,
} from '@dstack/core';
import { expectConfigurationError } from './helpers.js';

const hello = { type: 'task', commands: ['echo hi'] };

describe('parseRunSpec', () => {
  it('fills every field and keeps the repo unset until the server defaults it', () => {
    const spec = parseRunSpec({ configuration: hello });
    expect(spec).toMatchObject({
      run_name: null,
      repo_id: null,
      repo_data: null,
      repo_code_hash: null,
      repo_dir: null,
      file_archives: [],
      working_dir: null,
      configuration_path: null,
      profile: null,
      ssh_key_pub: null,
    });
    expect(spec.configuration.type).toBe('task');
  });

  it('takes repo_id and repo_data together', () => {
    const spec = parseRunSpec({
      configuration: hello,
      repo_id: 'my-repo',
      repo_data: { repo_type: 'remote', repo_name: 'dstack', repo_branch: 'main' },
      file_archives: [{ id: 'A1B2C3D4-0000-4000-8000-000000000001', path: '~/data' }],
      working_dir: '.',
    });
    expect(spec.repo_data).toEqual({
      repo_type: 'remote',
      repo_name: 'dstack',
      repo_branch: 'main',
      repo_hash: null,
      repo_config_name: null,
      repo_config_email: null,
    });
    expect(spec.file_archives).toEqual([
      { id: 'a1b2c3d4-0000-4000-8000-000000000001', path: '~/data' },
    ]);
    expect(spec.working_dir).toBe('.');
    const local = { repo_type: 'local', repo_dir: '/r' };
    const withLocal = parseRunSpec({ configuration: hello, repo_id: 'x', repo_data: local });
    expect(withLocal.repo_data).toEqual(local);
  });

  it('rejects one repo field without the other', () => {
    expectConfigurationError(
      () => parseRunSpec({ configuration: hello, repo_id: 'x' }),
      'repo_id: repo_id must not be set if repo_data is not set',
      ['repo_id'],
    );
    expectConfigurationError(
      () => parseRunSpec({ configuration: hello, repo_data: { repo_type: 'virtual' } }),
      'repo_data: repo_data must not be set if repo_id is not set',
      ['repo_data'],
    );
  });

  it('checks the run name and unknown spec fields', () => {
    expectConfigurationError(
      () => parseRunSpec({ configuration: hello, run_name: 'Bad_Name' }),
      "run_name: resource name should match regex '^[a-z][a-z0-9-]{1,40}$'",
      ['run_name'],
    );
    expectConfigurationError(
      () => parseRunSpec({ configuration: hello, merged_profile: {} }),
      'merged_profile: extra fields not permitted',
      ['merged_profile'],
    );
    expectConfigurationError(() => parseRunSpec({}), 'configuration: field required', [
      'configuration',
    ]);
    expectConfigurationError(
      () => parseRunSpec({ configuration: { ...hello, resources: { memory: '8GB..2GB' } } }),
      'configuration.resources.memory: min is greater than max',
      ['configuration', 'resources', 'memory'],
    );
  });

  it('parses the profile', () => {
    const spec = parseRunSpec({
      configuration: hello,
      profile: { name: 'gpu', default: true, spot_policy: 'spot', max_duration: '1h' },
    });
    expect(spec.profile).toEqual({
      ...emptyProfile('gpu'),
      default: true,
      spot_policy: 'spot',
      max_duration: 3600,
    });
    expectConfigurationError(
      () => parseRunSpec({ configuration: hello, profile: { idle: 1 } }),
      'profile.idle: extra fields not permitted',
      ['profile', 'idle'],
    );
  });
});

describe('effectiveRunSpec', () => {
  it('writes the server defaults', () => {
    const effective = effectiveRunSpec(parseRunSpec({ configuration: hello }));
    expect(effective.repo_id).toBe('none');
    expect(effective.repo_data).toEqual({ repo_type: 'virtual' });
    expect(effective.configuration).toMatchObject({ priority: 0, nodes: 1 });
    expect(effective.configuration.resources).toEqual({
      cpu: { arch: null, count: { min: 2, max: null } },
      memory: { min: 8, max: null },
      shm_size: null,
      gpu: {
        vendor: 'nvidia',
        name: null,
        count: { min: 0, max: null },
        memory: null,
        total_memory: null,
        compute_capability: null,
      },
      disk: { size: { min: 100, max: null } },
    });
  });

  it('leaves nodes null on tasks with groups and keeps set values', () => {
    const grouped = effectiveRunSpec(
      parseRunSpec({ configuration: { type: 'task', groups: [{ commands: ['x'] }], priority: 7 } }),
    );
    expect(grouped.configuration).toMatchObject({ nodes: null, priority: 7 });
    expect(
      grouped.configuration.type === 'task' &&
        grouped.configuration.groups?.[0].resources.gpu.vendor,
    ).toBe('nvidia');
  });

  it('infers the vendor from names, not for docker or with no GPU', () => {
    const vendor = (configuration: object) =>
      effectiveRunSpec(parseRunSpec({ configuration: { ...hello, ...configuration } }))
        .configuration.resources.gpu.vendor;
    expect(vendor({ resources: { gpu: 'H100:8' } })).toBe('nvidia');
    expect(vendor({ resources: { gpu: 'tpu:v5litepod-8' } })).toBe('google');
    expect(vendor({ resources: { gpu: 'v5litepod-8' } })).toBe('google');
    expect(vendor({ image: 'rocm/pytorch', resources: { gpu: 'H100,MI300X' } })).toBeNull();
    expect(vendor({ resources: { gpu: 'unknown9000' } })).toBeNull();
    expect(vendor({ resources: { gpu: 0 } })).toBeNull();
    expect(vendor({ docker: true })).toBeNull();
    expect(vendor({ image: 'rocm/pytorch', resources: { gpu: 'MI300X' } })).toBe('amd');
  });

  it('requires an image for accelerators and ARM the default image cannot use', () => {
    const effective = (configuration: object) =>
      effectiveRunSpec(parseRunSpec({ configuration: { ...hello, ...configuration } }));
    expectConfigurationError(
      () => effective({ resources: { gpu: 'MI300X' } }),
      '`image` must be set when the requested accelerator is not supported by the default' +
        " image: ['amd']",
    );
    expectConfigurationError(
      () => effective({ resources: { cpu: 'arm:4' } }),
      '`image` must be set when ARM CPU requested',
    );
    expectConfigurationError(
      () =>
        effectiveRunSpec(
          parseRunSpec({ configuration: { ...hello, docker: true, resources: { cpu: 'arm' } } }),
        ),
      '`docker: true` is not supported on ARM CPU',
    );
    expectConfigurationError(
      () => effective({ retry: { duration: -5 } }),
      'retry.duration cannot be negative',
    );
  });
});

describe('profiles', () => {
  it('merges configuration values over the profile', () => {
    const spec = parseRunSpec({
      configuration: { ...hello, spot_policy: 'auto', max_price: 2.5 },
      profile: { name: 'p', spot_policy: 'spot', regions: ['eu'], max_price: 1 },
    });
    const merged = mergedProfile(spec);
    expect(merged).toEqual({
      ...emptyProfile('p'),
      spot_policy: 'auto',
      regions: ['eu'],
      max_price: 2.5,
      creation_policy: 'reuse-or-create',
    });
    expect(spec.profile?.spot_policy).toBe('spot');
    expect(mergedProfile(parseRunSpec({ configuration: hello }))).toEqual({
      ...emptyProfile('default'),
      creation_policy: 'reuse-or-create',
    });
  });

  it('merges fleet profiles with on-demand and no retry by default', () => {
    const spec = parseFleetSpec({
      configuration: { type: 'fleet', nodes: 1, backends: ['aws'] },
      profile: { backends: ['gcp'], max_price: 3 },
    });
    expect(mergedFleetProfile(spec)).toEqual({
      ...emptyProfile(),
      backends: ['aws'],
      max_price: 3,
      spot_policy: 'on-demand',
      retry: false,
    });
  });

  it('parses a profile and resolves retry policies', () => {
    expect(parseProfile({ retry: true, stop_duration: '10m' })).toEqual({
      ...emptyProfile(),
      retry: true,
      stop_duration: 600,
    });
    expect(retryPolicy({ retry: true })).toEqual({
      on_events: ['no-capacity', 'interruption', 'error'],
      duration: 3600,
    });
    expect(retryPolicy({ retry: { on_events: ['error'], duration: 60 } })).toEqual({
      on_events: ['error'],
      duration: 60,
    });
    expect(retryPolicy({ retry: { on_events: null, duration: null } })).toEqual({
      on_events: ['no-capacity', 'interruption', 'error'],
      duration: 3600,
    });
    expect(retryPolicy({ retry: false })).toBeNull();
    expect(retryPolicy({ retry: null })).toBeNull();
  });
});

describe('requirementsFromRunSpec', () => {
  const requirements = (configuration: object, profile?: object) =>
    requirementsFromRunSpec(
      effectiveRunSpec(parseRunSpec({ configuration: { ...hello, ...configuration }, profile })),
    );

  it('defaults to on-demand and any CPU arch', () => {
    const needed = requirements({});
    expect(needed.spot).toBe(false);
    expect(needed.max_price).toBeNull();
    expect(needed.reservation).toBeNull();
    expect(needed.multinode).toBe(false);
    expect(needed.resources.cpu).toEqual({ arch: null, count: { min: 2, max: null } });
    expect(needed.resources.gpu.vendor).toBe('nvidia');
  });

  it('maps spot_policy and keeps a custom image arch open', () => {
    expect(requirements({ spot_policy: 'spot' }).spot).toBe(true);
    expect(requirements({ spot_policy: 'auto' }).spot).toBeNull();
    expect(requirements({}, { spot_policy: 'spot' }).spot).toBe(true);
    expect(requirements({ spot_policy: 'on-demand' }, { spot_policy: 'spot' }).spot).toBe(false);
    expect(requirements({ image: 'ubuntu' }).resources.cpu.arch).toBeNull();
    const spec = effectiveRunSpec(parseRunSpec({ configuration: hello }));
    const onX86 = requirementsFromRunSpec(spec, { defaultImageCpuArch: 'x86' });
    expect(onX86.resources.cpu.arch).toBe('x86');
    expect(requirements({ resources: { cpu: 'arm:2' }, image: 'arm64v8/ubuntu' }).resources.cpu)
      .toEqual({ arch: 'arm', count: { min: 2, max: 2 } });
    expect(requirements({ max_price: 1.5, reservation: 'r-1' })).toMatchObject({
      max_price: 1.5,
      reservation: 'r-1',
    });
  });

  it('marks multi-node tasks and uses a group resources', () => {
    expect(requirements({ nodes: 2 }).multinode).toBe(true);
    const grouped = requirementsFromRunSpec(
      effectiveRunSpec(
        parseRunSpec({
          configuration: {
            type: 'task',
            groups: [
              { name: 'big', commands: ['x'], resources: { memory: '64GB' } },
              { name: 'small', commands: ['y'] },
            ],
          },
        }),
      ),
      { groupName: 'big' },
    );
    expect(grouped.resources.memory).toEqual({ min: 64, max: 64 });
    expect(grouped.multinode).toBe(true);
  });
});

describe('fleets', () => {
  it.each([
    [2, { min: 2, max: 2 }],
    ['2', { min: 2, max: 2 }],
    ['1..4', { min: 1, max: 4 }],
    ['2..', { min: 2, max: null }],
    ['..3', { min: 0, max: 3 }],
    [{ min: 1, target: 2, max: 4 }, { min: 1, target: 2, max: 4 }],
    [{ min: 1, target: 1 }, { min: 1, max: null }],
    [{ max: 5 }, { min: 0, max: 5 }],
  ])('nodes %j', (input, expected) => {
    expect(parseFleetNodes(input, ['nodes'])).toEqual(expected);
  });

  it('rejects bad nodes', () => {
    expectConfigurationError(
      () => parseFleetConfiguration({ type: 'fleet', nodes: '3..1' }),
      'configuration.nodes.max: max must not be less than min',
      ['configuration', 'nodes', 'max'],
    );
    expectConfigurationError(
      () => parseFleetConfiguration({ type: 'fleet', nodes: { min: 2, target: 1 } }),
      'configuration.nodes.target: target must not be less than min',
      ['configuration', 'nodes', 'target'],
    );
    expectConfigurationError(
      () => parseFleetConfiguration({ type: 'fleet', nodes: { min: -1 } }),
      'configuration.nodes.min: min cannot be negative',
      ['configuration', 'nodes', 'min'],
    );
  });

  it('reads blocks, resources, idle_duration and retry', () => {
    const parsed = parseFleetConfiguration({
      type: 'fleet',
      nodes: 1,
      blocks: 'auto',
      resources: { gpu: 'H100:8' },
      idle_duration: 'off',
      retry: true,
    });
    expect(parsed.blocks).toBe('auto');
    expect(parsed.resources?.gpu).toMatchObject({ name: ['H100'], count: { min: 8, max: 8 } });
    expect(parsed.idle_duration).toBe(-1);
    expect(parsed.retry).toBe(true);
    expectConfigurationError(
      () => parseFleetConfiguration({ type: 'fleet', nodes: 1, blocks: 0 }),
      'configuration.blocks: must be >= 1',
      ['configuration', 'blocks'],
    );
  });

  it('requires exactly one of ssh_config and nodes', () => {
    expectConfigurationError(
      () => parseFleetSpec({ configuration: { type: 'fleet', name: 'f1' }, profile: {} }),
      'configuration: no ssh_config or nodes specified',
      ['configuration'],
    );
    expectConfigurationError(
      () =>
        parseFleetSpec({
          configuration: { type: 'fleet', nodes: 1, ssh_config: { user: 'u', hosts: ['h'] } },
          profile: {},
        }),
      'configuration.nodes: ssh_config and nodes are mutually exclusive',
      ['configuration', 'nodes'],
    );
  });

  it('rejects backend-only fields on SSH fleets and env on cloud fleets', () => {
    const sshConfig = { user: 'u', ssh_key: { public: 'pub', private: 'priv' }, hosts: ['h'] };
    expectConfigurationError(
      () =>
        parseFleetSpec({
          configuration: {
            type: 'fleet',
            ssh_config: sshConfig,
            backends: ['aws'],
            idle_duration: '1h',
          },
          profile: {},
        }),
      'configuration.backends: SSH fleet configuration does not support the following fields:' +
        " ['backends', 'idle_duration']",
      ['configuration', 'backends'],
    );
    expectConfigurationError(
      () =>
        parseFleetSpec({ configuration: { type: 'fleet', nodes: 1, env: ['A=1'] }, profile: {} }),
      'configuration.env: Backend fleet configuration does not support the following fields:' +
        " ['env']",
      ['configuration', 'env'],
    );
    const ssh = parseFleetSpec({
      configuration: { type: 'fleet', ssh_config: sshConfig, env: { A: '1' } },
      profile: {},
    });
    expect(ssh.configuration.env).toEqual({ A: '1' });
  });

  it('checks SSH hosts and networks', () => {
    const key = { public: 'pub', private: 'priv' };
    const spec = (sshConfig: object) =>
      parseFleetSpec({ configuration: { type: 'fleet', ssh_config: sshConfig }, profile: {} });
    expectConfigurationError(
      () => spec({ ssh_key: key, hosts: ['10.0.0.1'] }),
      'configuration.ssh_config.hosts.0: no ssh user specified for host 10.0.0.1',
      ['configuration', 'ssh_config', 'hosts', '0'],
    );
    expectConfigurationError(
      () =>
        spec({ ssh_key: key, user: 'u', hosts: [{ hostname: 'a', internal_ip: '10.0.0.1' }, 'b'] }),
      'configuration.ssh_config.hosts: internal_ip must be specified for all hosts',
      ['configuration', 'ssh_config', 'hosts'],
    );
    expectConfigurationError(
      () => spec({ ssh_key: key, user: 'u', hosts: [{ hostname: 'a', internal_ip: '8.8.8.8' }] }),
      'configuration.ssh_config.hosts.0.internal_ip: IP address is not private',
      ['configuration', 'ssh_config', 'hosts', '0', 'internal_ip'],
    );
    expectConfigurationError(
      () => spec({ ssh_key: key, user: 'u', hosts: ['a'], network: '8.8.0.0/16' }),
      'configuration.ssh_config.network:' +
        ' public network is specified when private network is required',
      ['configuration', 'ssh_config', 'network'],
    );
    const parsed = spec({
      user: 'root',
      hosts: [
        {
          hostname: 'gpu-1',
          port: 2222,
          ssh_key: key,
          internal_ip: '10.0.0.5',
          blocks: 4,
          proxy_jump: { hostname: 'bastion', user: 'j', identity_file: '~/.ssh/j' },
        },
      ],
    });
    expect(parsed.configuration.ssh_config?.hosts[0]).toEqual({
      hostname: 'gpu-1',
      port: 2222,
      user: null,
      identity_file: null,
      proxy_jump: {
        hostname: 'bastion',
        port: null,
        user: 'j',
        identity_file: '~/.ssh/j',
        ssh_key: null,
      },
      internal_ip: '10.0.0.5',
      ssh_key: key,
      blocks: 4,
    });
  });

  it('checks the fleet name and accepts the deprecated autocreated flag', () => {
    expectConfigurationError(
      () => parseFleetSpec({ configuration: { type: 'fleet', name: 'A', nodes: 1 }, profile: {} }),
      "configuration.name: resource name should match regex '^[a-z][a-z0-9-]{1,40}$'",
      ['configuration', 'name'],
    );
    expect(
      parseFleetSpec({ configuration: { type: 'fleet', nodes: 1 }, profile: {}, autocreated: true })
        .autocreated,
    ).toBe(true);
    expectConfigurationError(
      () => parseFleetConfiguration({ type: 'fleet', nodes: 1, gpus: 1 }),
      'configuration.gpus: extra fields not permitted',
      ['configuration', 'gpus'],
    );
  });
});
