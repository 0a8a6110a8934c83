import { describe, expect, it } from 'vitest';
import {
  parseRunConfiguration,
  type ServiceConfiguration,
  type TaskConfiguration,
} from '@dstack/core';
import { expectConfigurationError } from './helpers.js';

function task(fields: Record<string, unknown>): TaskConfiguration {
  const parsed = parseRunConfiguration({ type: 'task', commands: ['true'], ...fields });

  return parsed as TaskConfiguration;
}

function service(fields: Record<string, unknown>): ServiceConfiguration {
  return parseRunConfiguration({
    type: 'service',
    commands: ['serve'],
    port: 8000,
    ...fields,
  }) as ServiceConfiguration;
}

describe('shorthands', () => {
  it('reads ports', () => {
    expect(task({ ports: [8080, '80:8080', '*:8080', { container_port: 22 }] }).ports).toEqual([
      { local_port: 8080, container_port: 8080 },
      { local_port: 80, container_port: 8080 },
      { local_port: null, container_port: 8080 },
      { local_port: null, container_port: 22 },
    ]);
  });

  it('reads a service port', () => {
    expect(service({ port: 8000 }).port).toEqual({ local_port: 80, container_port: 8000 });
    expect(service({ port: '8000:80' }).port).toEqual({ local_port: 8000, container_port: 80 });
    expect(service({ port: { container_port: 9000 } }).port).toEqual({
      local_port: null,
      container_port: 9000,
    });
  });

  it('reads durations as seconds and off', () => {
    const parsed = task({ max_duration: '2h', stop_duration: 'off', idle_duration: 'off' });
    expect(parsed.max_duration).toBe(7200);
    expect(parsed.stop_duration).toBe('off');
    expect(parsed.idle_duration).toBe(-1);
    expect(task({ max_duration: false, stop_duration: true }).max_duration).toBe('off');
    expect(task({ stop_duration: true }).stop_duration).toBeNull();
    expect(task({ idle_duration: '1d' }).idle_duration).toBe(86400);
    expect(task({ idle_duration: false }).idle_duration).toBe(-1);
  });

  it('reads inactivity_duration of a dev environment', () => {
    const dev = (value: unknown) =>
      parseRunConfiguration({ type: 'dev-environment', ide: 'vscode', inactivity_duration: value });
    expect(dev('2h')).toMatchObject({ inactivity_duration: 7200 });
    expect(dev('off')).toMatchObject({ inactivity_duration: null });
    expect(dev(false)).toMatchObject({ inactivity_duration: null });
    expect(dev(600)).toMatchObject({ inactivity_duration: 600 });
  });

  it('reads utilization_policy', () => {
    expect(
      task({ utilization_policy: { min_gpu_utilization: 10, time_window: '30m' } })
        .utilization_policy,
    ).toEqual({ min_gpu_utilization: 10, time_window: 1800 });
  });

  it('reads env as a list or a map', () => {
    expect(task({ env: ['A=1', 'B'] }).env).toEqual({ A: '1', B: { key: 'B' } });
    expect(task({ env: { PORT: 8080 } }).env).toEqual({ PORT: '8080' });
  });

  it('reads retry', () => {
    expect(task({ retry: true }).retry).toBe(true);
    expect(task({ retry: false }).retry).toBe(false);
    expect(task({ retry: { duration: '1h' } }).retry).toEqual({ on_events: null, duration: 3600 });
    expect(task({ retry: { on_events: ['no-capacity', 'error'] } }).retry).toEqual({
      on_events: ['no-capacity', 'error'],
      duration: null,
    });
  });

  it('reads spot_policy, schedule and references', () => {
    const parsed = task({
      spot_policy: 'auto',
      schedule: { cron: '0 8 * * mon-fri' },
      fleets: ['gpus', 'team/shared', { name: 'x' }],
      instances: ['box-0', { hostname: '10.0.0.2' }, { fleet: 'team/gpus', instance: 1 }],
    });
    expect(parsed.spot_policy).toBe('auto');
    expect(parsed.schedule).toEqual({ cron: ['0 8 * * mon-fri'] });
    expect(parsed.fleets).toEqual([
      { project: null, name: 'gpus' },
      { project: 'team', name: 'shared' },
      { project: null, name: 'x' },
    ]);
    expect(parsed.instances).toEqual([
      { name: 'box-0' },
      { hostname: '10.0.0.2' },
      { fleet: { project: 'team', name: 'gpus' }, instance: 1 },
    ]);
    expect(task({ schedule: { cron: ['*/5 * * * *', '0 0 1 jan *'] } }).schedule).toEqual({
      cron: ['*/5 * * * *', '0 0 1 jan *'],
    });
  });

  it('reads python from a YAML number', () => {
    expect(task({ python: 3.1 }).python).toBe('3.10');
    expect(task({ python: 3.12 }).python).toBe('3.12');
    expect(task({ python: '3.9' }).python).toBe('3.9');
  });

  it('reads a task with nodes and with groups', () => {
    expect(task({ nodes: 4 }).nodes).toBe(4);
    const grouped = parseRunConfiguration({
      type: 'task',
      groups: [
        { commands: ['a'], nodes: 2 },
        { name: 'workers', commands: ['b'], ports: [8080] },
      ],
    }) as TaskConfiguration;
    expect(grouped.nodes).toBeNull();
    expect(grouped.groups).toEqual([
      {
        name: '0',
        nodes: 2,
        resources: grouped.resources,
        commands: ['a'],
        ports: [],
      },
      {
        name: 'workers',
        nodes: 1,
        resources: grouped.resources,
        commands: ['b'],
        ports: [{ local_port: 8080, container_port: 8080 }],
      },
    ]);
  });

  it('reads service replicas as an int or a range with scaling', () => {
    expect(service({ replicas: 2 }).replicas).toEqual({ min: 2, max: 2 });
    const scaled = service({ replicas: '0..4', scaling: { metric: 'rps', target: 10 } });
    expect(scaled.replicas).toEqual({ min: 0, max: 4 });
    expect(scaled.scaling).toEqual({
      metric: 'rps',
      target: 10,
      window: null,
      scale_up_delay: 300,
      scale_down_delay: 600,
    });
    expect(
      service({ replicas: '..3', scaling: { metric: 'rps', target: 1, window: '5m' } }).replicas,
    ).toEqual({ min: 0, max: 3 });
  });

  it('writes service groups under replicas with count', () => {
    const parsed = parseRunConfiguration({
      type: 'service',
      port: 8000,
      groups: [{ name: 'prefill', replicas: 1, commands: ['p'] }, { count: 2, commands: ['d'] }],
    }) as ServiceConfiguration;
    expect(parsed).not.toHaveProperty('groups');
    expect(Array.isArray(parsed.replicas)).toBe(true);
    expect(parsed.replicas).toMatchObject([
      { name: 'prefill', count: { min: 1, max: 1 }, commands: ['p'], image: null, router: null },
      { name: '1', count: { min: 2, max: 2 }, commands: ['d'] },
    ]);
  });

  it('reads the legacy replica groups list under replicas', () => {
    const parsed = service({ commands: [], replicas: [{ count: 1, commands: ['x'] }] });
    expect(parsed.replicas).toMatchObject([{ name: '0', count: { min: 1, max: 1 } }]);
  });

  it('reads a model name, a gateway name and probes', () => {
    const parsed = service({
      model: 'llama',
      gateway: 'team/gw',
      probes: [{ type: 'http', url: '/health', timeout: '5s' }],
    });
    expect(parsed.model).toEqual({ type: 'chat', name: 'llama', format: 'openai', prefix: '/v1' });
    expect(parsed.gateway).toEqual({ project: 'team', name: 'gw' });
    expect(parsed.probes).toEqual([
      {
        type: 'http',
        url: '/health',
        method: null,
        headers: [],
        body: null,
        timeout: 5,
        interval: null,
        ready_after: null,
        until_ready: null,
      },
    ]);
    expect(service({ gateway: false }).gateway).toBe(false);
  });

  it('reads volumes, repos and files shorthands', () => {
    const parsed = task({
      volumes: ['data:/data', '/mnt/cache:/cache/', { name: ['a', 'b'], path: '/v' }],
      repos: ['https://github.com/dstackai/dstack:/src'],
      files: ['.env', 'local/x:/remote/x'],
    });
    expect(parsed.volumes).toEqual([
      { name: 'data', path: '/data' },
      { instance_path: '/mnt/cache', path: '/cache', optional: false },
      { name: ['a', 'b'], path: '/v' },
    ]);
    expect(parsed.repos).toEqual([
      {
        local_path: null,
        url: 'https://github.com/dstackai/dstack',
        branch: null,
        hash: null,
        path: '/src',
        if_exists: 'error',
      },
    ]);
    expect(parsed.files).toEqual([
      { local_path: '.env', path: '.env' },
      { local_path: 'local/x', path: '/remote/x' },
    ]);
  });

  it('accepts the deprecated fields old clients still send', () => {
    const parsed = task({ home_dir: '/home/me', setup: ['pip install x'] });
    expect(parsed.home_dir).toBe('/home/me');
    expect(parsed.setup).toEqual(['pip install x']);
  });

  it('accepts a fully serialized configuration as it parsed it', () => {
    const first = task({ resources: { gpu: 'A100:2', memory: '64GB..' }, max_duration: '1h' });
    expect(parseRunConfiguration(first)).toEqual(first);
    const grouped = service({
      commands: [],
      groups: [{ replicas: '1..2', scaling: { metric: 'rps', target: 5 }, commands: ['x'] }],
    });
    expect(parseRunConfiguration(grouped)).toEqual(grouped);
  });
});

describe('bad input', () => {
  const c = (...path: string[]) => ['configuration', ...path];

  it('rejects unknown fields', () => {
    expectConfigurationError(
      () => task({ comands: ['x'] }),
      'configuration.comands: extra fields not permitted',
      c('comands'),
    );
    expectConfigurationError(
      () => task({ resources: { gpus: 1 } }),
      'configuration.resources.gpus: extra fields not permitted',
      c('resources', 'gpus'),
    );
    expectConfigurationError(
      () => task({ retry: { on_events: ['error'], attempts: 3 } }),
      'configuration.retry.attempts: extra fields not permitted',
      c('retry', 'attempts'),
    );
    expectConfigurationError(
      () => task({ ports: [{ container_port: 80, host_port: 80 }] }),
      'configuration.ports.0.host_port: extra fields not permitted',
      c('ports', '0', 'host_port'),
    );
  });

  it('rejects an unknown type and a missing one', () => {
    expectConfigurationError(
      () => parseRunConfiguration({ type: 'job' }),
      'configuration.type: must be one of: dev-environment, task, service',
      c('type'),
    );
    expectConfigurationError(
      () => parseRunConfiguration('task'),
      'configuration: must be a mapping',
    );
  });

  it('rejects wrong types, enums and bounds', () => {
    expectConfigurationError(
      () => task({ priority: 101 }),
      'configuration.priority: must be <= 100',
      c('priority'),
    );
    expectConfigurationError(
      () => task({ spot_policy: 'cheap' }),
      'configuration.spot_policy: must be one of: spot, on-demand, auto',
      c('spot_policy'),
    );
    expectConfigurationError(
      () => task({ commands: 'echo' }),
      'configuration.commands: must be an array',
      c('commands'),
    );
    expectConfigurationError(
      () => task({ privileged: 'yes' }),
      'configuration.privileged: must be a boolean',
      c('privileged'),
    );
    expectConfigurationError(
      () => task({ ports: [70000] }),
      'configuration.ports.0: must be <= 65535',
      c('ports', '0'),
    );
    expectConfigurationError(
      () => task({ max_price: 0 }),
      'configuration.max_price: must be > 0',
      c('max_price'),
    );
    expectConfigurationError(
      () => task({ nodes: 0 }),
      'configuration.nodes: must be >= 1',
      c('nodes'),
    );
    expectConfigurationError(
      () => task({ python: '2.7' }),
      'configuration.python: must be one of: 3.9, 3.10, 3.11, 3.12, 3.13, 3.14',
      c('python'),
    );
  });

  it('rejects bad resources', () => {
    expectConfigurationError(
      () => task({ resources: { memory: '16GB..8GB' } }),
      'configuration.resources.memory: min is greater than max',
      c('resources', 'memory'),
    );
    expectConfigurationError(
      () => task({ resources: { cpu: '..' } }),
      'configuration.resources.cpu.count: invalid empty range: ..',
      c('resources', 'cpu', 'count'),
    );
    expectConfigurationError(
      () => task({ resources: { gpu: 'A100:H100' } }),
      'configuration.resources.gpu: GPU spec name conflict: A100:H100',
      c('resources', 'gpu'),
    );
  });

  it('rejects bad durations and env', () => {
    expectConfigurationError(
      () => task({ max_duration: 'forever' }),
      "configuration.max_duration: cannot parse the duration 'forever'",
      c('max_duration'),
    );
    expectConfigurationError(
      () => task({ env: ['A=1', 'A=2'] }),
      'configuration.env.1: duplicate environment variable: A=2',
      c('env', '1'),
    );
    expectConfigurationError(
      () => task({ utilization_policy: { min_gpu_utilization: 5, time_window: '1m' } }),
      'configuration.utilization_policy.time_window: minimum time_window is 5m',
      c('utilization_policy', 'time_window'),
    );
    expectConfigurationError(
      () => task({ retry: { on_events: [] } }),
      'configuration.retry.on_events: `on_events` cannot be empty',
      c('retry', 'on_events'),
    );
  });

  it('rejects image with python, nvcc or docker', () => {
    expectConfigurationError(
      () => task({ image: 'ubuntu', python: '3.11' }),
      'configuration.python: `image` and `python` are mutually exclusive fields',
      c('python'),
    );
    expectConfigurationError(
      () => task({ image: 'ubuntu', nvcc: true }),
      'configuration.nvcc: `image` and `nvcc` are mutually exclusive fields',
      c('nvcc'),
    );
    expectConfigurationError(
      () => task({ image: 'ubuntu', docker: true }),
      'configuration.docker: `image` and `docker` are mutually exclusive fields',
      c('docker'),
    );
    expectConfigurationError(
      () => task({ python: '3.12', docker: true }),
      'configuration.docker: `python` and `docker` are mutually exclusive fields',
      c('docker'),
    );
  });

  it('rejects a task with neither commands nor image', () => {
    expectConfigurationError(
      () => parseRunConfiguration({ type: 'task' }),
      'configuration.commands: either `commands` or `image` must be set',
      c('commands'),
    );
  });

  it('enforces the groups exclusions', () => {
    const group = { commands: ['x'] };
    expectConfigurationError(
      () => parseRunConfiguration({ type: 'task', nodes: 2, groups: [group] }),
      'configuration.groups: `nodes` and `groups` are mutually exclusive',
      c('groups'),
    );
    expectConfigurationError(
      () => parseRunConfiguration({ type: 'task', commands: ['y'], groups: [group] }),
      'configuration.commands: top-level `commands` is not allowed when `groups` is set.' +
        ' Specify `commands` in each node group instead',
      c('commands'),
    );
    expectConfigurationError(
      () => parseRunConfiguration({ type: 'task', ports: [80], groups: [group] }),
      'configuration.ports: top-level `ports` is not allowed when `groups` is set.' +
        ' Specify `ports` in each node group instead',
      c('ports'),
    );
    expectConfigurationError(
      () => parseRunConfiguration({ type: 'task', entrypoint: 'sh', groups: [group] }),
      'configuration.entrypoint: top-level `entrypoint` is not allowed when `groups` is set.' +
        ' Specify `commands` in each node group instead',
      c('entrypoint'),
    );
    expectConfigurationError(
      () => parseRunConfiguration({ type: 'task', groups: [] }),
      'configuration.groups: `groups` cannot be an empty list',
      c('groups'),
    );
    expectConfigurationError(
      () =>
        parseRunConfiguration({ type: 'task', groups: [{ name: 'a', ...group }, { name: 'a' }] }),
      "configuration.groups: duplicate node group names found: ['a']." +
        ' Each node group must have a unique name',
      c('groups'),
    );
    expectConfigurationError(
      () => parseRunConfiguration({ type: 'task', groups: [{}] }),
      "configuration.groups: node group '0': either `commands` must be set in the group," +
        ' or `image` at the task level',
      c('groups'),
    );
  });

  it('enforces the service replica rules', () => {
    expectConfigurationError(
      () => service({ replicas: '1..3' }),
      'configuration.scaling: when you set `replicas` to a range, ensure to specify `scaling`',
      c('scaling'),
    );
    expectConfigurationError(
      () => service({ replicas: 2, scaling: { metric: 'rps', target: 1 } }),
      'configuration.scaling: to use `scaling`, `replicas` must be set to a range',
      c('scaling'),
    );
    expectConfigurationError(
      () => service({ replicas: '2..' }),
      'configuration.replicas: the maximum number of replicas is required',
      c('replicas'),
    );
    expectConfigurationError(
      () => service({ replicas: 1, groups: [{ replicas: 1, commands: ['x'] }] }),
      'configuration.replicas: `replicas` and `groups` are mutually exclusive',
      c('replicas'),
    );
    expectConfigurationError(
      () => service({ scaling: { metric: 'rps', target: 1, window: '10s' } }),
      'configuration.scaling.window: window must be one of: `30s`, `60s`, `300s`',
      c('scaling', 'window'),
    );
    expectConfigurationError(
      () => parseRunConfiguration({ type: 'service', commands: ['x'] }),
      'configuration.port: field required',
      c('port'),
    );
  });

  it('rejects dev-environment specifics', () => {
    expectConfigurationError(
      () => parseRunConfiguration({ type: 'dev-environment', entrypoint: 'bash' }),
      'configuration.entrypoint: entrypoint is not supported for dev-environment',
      c('entrypoint'),
    );
    expectConfigurationError(
      () => parseRunConfiguration({ type: 'dev-environment', version: '1.0' }),
      'configuration.version: `version` requires `ide` to be set',
      c('version'),
    );
    expectConfigurationError(
      () => parseRunConfiguration({ type: 'dev-environment', commands: ['x'] }),
      'configuration.commands: extra fields not permitted',
      c('commands'),
    );
  });

  it('rejects bad references, schedules and tags', () => {
    expectConfigurationError(
      () => task({ fleets: ['a/b/c'] }),
      'configuration.fleets.0: invalid entity reference.' +
        ' Only `<name>` or `<project>/<name>` formats are allowed',
      c('fleets', '0'),
    );
    expectConfigurationError(
      () => task({ instances: [] }),
      'configuration.instances: must NOT have fewer than 1 items',
      c('instances'),
    );
    expectConfigurationError(
      () => task({ schedule: { cron: '61 * * * *' } }),
      "configuration.schedule.cron: invalid cron expression '61 * * * *': bad minute '61'",
      c('schedule', 'cron'),
    );
    expectConfigurationError(
      () => task({ tags: { 'bad key': 'x' } }),
      'configuration.tags.bad key: invalid tag key bad key.' +
        " The key must match regex '^[_\\-a-zA-Z0-9]{1,60}$'",
      c('tags', 'bad key'),
    );
  });

  it('rejects bad user, shell and volume paths', () => {
    expectConfigurationError(
      () => task({ user: 'a:b:c' }),
      'configuration.user: invalid user format: too many parts',
      c('user'),
    );
    expectConfigurationError(
      () => task({ shell: 'zsh' }),
      'configuration.shell: the value must be `sh`, `bash`, or an absolute path',
      c('shell'),
    );
    expectConfigurationError(
      () => task({ volumes: ['data:relative'] }),
      'configuration.volumes.0: path must be absolute: relative',
      c('volumes', '0'),
    );
  });
});
