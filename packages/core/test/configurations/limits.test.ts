import { describe, expect, it } from 'vitest';
import { maxNodeCount, parseFleetSpec, parseRunSpec } from '@dstack/core';
import { expectConfigurationError } from './helpers.js';

// Each node or replica becomes a job (and each fleet node an instance) held in memory, so a
// count of 10^12 from one request used to exhaust the server's heap and kill it.
const huge = 10 ** 12;
const task = { type: 'task', commands: ['true'] };
const service = { type: 'service', commands: ['true'], port: 8000 };

describe('node and replica limits', () => {
  it('accepts exactly the limit', () => {
    const spec = parseRunSpec({ configuration: { ...task, nodes: maxNodeCount } });
    expect(spec.configuration).toMatchObject({ nodes: 1000 });
    expect(maxNodeCount).toBe(1000);
  });

  it('refuses a task with more nodes than the limit', () => {
    expectConfigurationError(
      () => parseRunSpec({ configuration: { ...task, nodes: huge } }),
      'configuration.nodes: must be <= 1000',
      ['configuration', 'nodes'],
    );
  });

  it('refuses node groups whose nodes add up to more than the limit', () => {
    const groups = [
      { name: 'a', nodes: 600, commands: ['true'] },
      { name: 'b', nodes: 600, commands: ['true'] },
    ];
    expectConfigurationError(
      () => parseRunSpec({ configuration: { type: 'task', groups } }),
      'configuration.groups: the node groups ask for 1200 nodes, at most 1000 are supported',
      ['configuration', 'groups'],
    );
  });

  it('refuses a service with more replicas than the limit', () => {
    expectConfigurationError(
      () => parseRunSpec({ configuration: { ...service, replicas: huge } }),
      'configuration.replicas: at most 1000 replicas are supported',
      ['configuration', 'replicas'],
    );
  });

  it('refuses replica groups whose maximums add up to more than the limit', () => {
    const groups = [
      { name: 'a', replicas: 700, commands: ['true'] },
      { name: 'b', replicas: 700, commands: ['true'] },
    ];
    expectConfigurationError(
      () => parseRunSpec({ configuration: { type: 'service', port: 8000, replicas: groups } }),
      'configuration.replicas: the replica groups ask for up to 1400 replicas,' +
        ' at most 1000 are supported',
      ['configuration', 'replicas'],
    );
  });

  it('refuses a fleet with more nodes than the limit, in any of its bounds', () => {
    const fleet = (nodes: unknown) => ({ configuration: { type: 'fleet', nodes } });
    expectConfigurationError(
      () => parseFleetSpec(fleet(huge)),
      'configuration.nodes.min: at most 1000 nodes are supported',
      ['configuration', 'nodes', 'min'],
    );
    expectConfigurationError(
      () => parseFleetSpec(fleet({ min: 0, target: 2000 })),
      'configuration.nodes.target: at most 1000 nodes are supported',
      ['configuration', 'nodes', 'target'],
    );
    expectConfigurationError(
      () => parseFleetSpec(fleet('0..5000')),
      'configuration.nodes.max: at most 1000 nodes are supported',
      ['configuration', 'nodes', 'max'],
    );
    expect(parseFleetSpec(fleet('0..1000')).configuration.nodes).toEqual({ min: 0, max: 1000 });
  });
});

describe('numbers too big to hold', () => {
  it('refuses a memory size that overflows to Infinity instead of storing null', () => {
    expectConfigurationError(
      () => parseRunSpec({ configuration: { ...task, resources: { memory: '1e400GB' } } }),
      "configuration.resources.memory.min: invalid memory size: '1e400GB'",
      ['configuration', 'resources', 'memory', 'min'],
    );
  });
});
