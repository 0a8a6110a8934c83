import { describe, expect, it } from 'vitest';
import {
  effectiveRunSpec,
  parseFleetSpec,
  parseRunSpec,
  ServerClientError,
} from '@dstack/core';

// A small deterministic generator, so a failure reproduces with the same seed.
function createRandom(seed: number): () => number {
  let state = seed >>> 0;

  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;

    return state / 2 ** 32;
  };
}

const KEYS = [
  'type', 'name', 'commands', 'ports', 'port', 'nodes', 'groups', 'replicas', 'count', 'scaling',
  'resources', 'cpu', 'memory', 'gpu', 'disk', 'size', 'min', 'max', 'target', 'env', 'retry',
  'on_events', 'duration', 'max_duration', 'idle_duration', 'schedule', 'cron', 'fleets',
  'instances', 'fleet', 'instance', 'hostname', 'ssh_config', 'hosts', 'user', 'ssh_key',
  'public', 'private', 'proxy_jump', 'image', 'python', 'docker', 'volumes', 'path', 'repos',
  'files', 'tags', 'backend_options', 'probes', 'model', 'gateway', 'project', 'key', 'arch',
  'vendor', 'compute_capability', '__proto__', 'constructor',
];
const STRINGS = [
  '', '..', '1..', '..4', '2..1', 'A100:80GB:2', 'arm:4..', 'tpu-v5litepod-8', 'off', '5m',
  '30x', 'K=V', 'K', '80:8080', '*:22', 'a/b', 'a/b/c', '3.10', 'task', 'service', 'fleet',
  'dev-environment', '0 0 * * *', '/abs', 'rel:path', 'é', 'nvidia', 'auto', 'spot', '-1',
];

function randomValue(random: () => number, depth: number): unknown {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)];
  const roll = random();
  if (depth > 3 || roll < 0.25) {
    return pick<unknown>([null, true, false, 0, -1, 1, 2.5, 65536, 1e308, pick(STRINGS)]);
  }

  if (roll < 0.45) {
    return Array.from({ length: Math.floor(random() * 3) }, () => randomValue(random, depth + 1));
  }

  const object: Record<string, unknown> = {};
  for (let index = Math.floor(random() * 4); index > 0; index--) {
    Object.defineProperty(object, pick(KEYS), {
      value: randomValue(random, depth + 1),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }

  return object;
}

function mutate(base: Record<string, unknown>, random: () => number): Record<string, unknown> {
  const copy = structuredClone(base);
  const keys = Object.keys(copy);
  const key = random() < 0.8 ? keys[Math.floor(random() * keys.length)] : KEYS[0];
  copy[key] = randomValue(random, 1);

  return copy;
}

function expectOnlyClientErrors(run: () => unknown): void {
  try {
    run();
  } catch (error) {
    if (!(error instanceof ServerClientError)) {
      throw error;
    }

    expect(error.message.length).toBeGreaterThan(0);
  }
}

const configurations: Record<string, unknown>[] = [
  { type: 'task', commands: ['x'], resources: { gpu: 'A100:2' }, env: ['A=1'], ports: [80] },
  {
    type: 'service',
    commands: ['x'],
    port: 8000,
    replicas: '1..2',
    scaling: { metric: 'rps', target: 1 },
  },
  { type: 'dev-environment', ide: 'vscode', inactivity_duration: '1h', retry: true },
];

describe('bad input never escapes as anything but a 400', () => {
  it('run specs', () => {
    const random = createRandom(20261204);
    for (let round = 0; round < 3000; round++) {
      const base = configurations[round % configurations.length];
      const configuration = mutate(random() < 0.5 ? base : mutate(base, random), random);
      expectOnlyClientErrors(() => effectiveRunSpec(parseRunSpec({ configuration })));
    }
  });

  it('fleet specs', () => {
    const random = createRandom(42);
    const bases: Record<string, unknown>[] = [
      { type: 'fleet', nodes: '0..2', backends: ['aws'], idle_duration: '10m' },
      { type: 'fleet', ssh_config: { user: 'u', ssh_key: { public: 'p' }, hosts: ['h'] } },
    ];
    for (let round = 0; round < 2000; round++) {
      const configuration = mutate(bases[round % bases.length], random);
      expectOnlyClientErrors(() => parseFleetSpec({ configuration, profile: {} }));
    }
  });

  it('whole specs of random shape', () => {
    const random = createRandom(7);
    for (let round = 0; round < 2000; round++) {
      const value = randomValue(random, 0);
      expectOnlyClientErrors(() => parseRunSpec(value));
      expectOnlyClientErrors(() => parseFleetSpec(value));
    }
  });
});
