import { describe, expect, it } from 'vitest';
import { parseCpu, parseGpu, parseResources, ServerClientError } from '@dstack/core';

function failure(run: () => unknown): ServerClientError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ServerClientError);

    return error as ServerClientError;
  }

  throw new Error('expected a ServerClientError');
}

const noGpu = {
  vendor: null,
  name: null,
  count: { min: 0, max: null },
  memory: null,
  total_memory: null,
  compute_capability: null,
};

describe('resources', () => {
  it('fills the original defaults', () => {
    expect(parseResources({})).toEqual({
      cpu: { arch: null, count: { min: 2, max: null } },
      memory: { min: 8, max: null },
      shm_size: null,
      gpu: noGpu,
      disk: { size: { min: 100, max: null } },
    });
  });

  it('reads every shorthand of a section', () => {
    expect(
      parseResources({
        cpu: 'arm:4..',
        memory: '16GB..',
        shm_size: '512MB',
        disk: '200GB..',
        gpu: 'A100:80GB:2',
      }),
    ).toEqual({
      cpu: { arch: 'arm', count: { min: 4, max: null } },
      memory: { min: 16, max: null },
      shm_size: 0.5,
      gpu: {
        vendor: null,
        name: ['A100'],
        count: { min: 2, max: 2 },
        memory: { min: 80, max: 80 },
        total_memory: null,
        compute_capability: null,
      },
      disk: { size: { min: 200, max: null } },
    });
  });

  it('reads disk as a number or an object', () => {
    expect(parseResources({ disk: 500 }).disk).toEqual({ size: { min: 500, max: 500 } });
    expect(parseResources({ disk: { size: '1TB' } }).disk).toEqual({
      size: { min: 1024, max: 1024 },
    });
  });

  it('rejects unknown keys and bad ranges with their path', () => {
    const unknown = failure(() => parseResources({ gpus: 1 }));
    expect(unknown.message).toBe('resources.gpus: extra fields not permitted');
    expect(unknown.fields).toEqual([['resources', 'gpus']]);
    const order = failure(() => parseResources({ memory: '16GB..8GB' }));
    expect(order.message).toBe('resources.memory: min is greater than max');
    expect(order.fields).toEqual([['resources', 'memory']]);
    expect(failure(() => parseResources({ disk: '..' })).message).toBe(
      'resources.disk.size: invalid empty range: ..',
    );
  });
});

describe('cpu', () => {
  it.each([
    [8, { arch: null, count: { min: 8, max: 8 } }],
    ['2..8', { arch: null, count: { min: 2, max: 8 } }],
    ['arm:4..', { arch: 'arm', count: { min: 4, max: null } }],
    ['x86', { arch: 'x86', count: { min: 2, max: null } }],
    ['ARM:2', { arch: 'arm', count: { min: 2, max: 2 } }],
    [{ min: 4 }, { arch: null, count: { min: 4, max: null } }],
    [{ min: 2, max: 4 }, { arch: null, count: { min: 2, max: 4 } }],
    [{ arch: 'arm', count: '2..' }, { arch: 'arm', count: { min: 2, max: null } }],
    [{ arch: 'x86' }, { arch: 'x86', count: { min: 2, max: null } }],
  ])('%j', (input, expected) => {
    expect(parseCpu(input, ['cpu'])).toEqual(expected);
  });

  it('rejects conflicts and unknown architectures', () => {
    expect(failure(() => parseCpu('2:4', ['cpu'])).message).toBe(
      'cpu: CPU spec count conflict: 2:4',
    );
    expect(failure(() => parseCpu('arm:x86', ['cpu'])).message).toBe(
      'cpu: CPU spec arch conflict: arm:x86',
    );
    expect(failure(() => parseCpu('risc:2', ['cpu'])).message).toBe(
      "cpu: invalid CPU architecture: 'risc'",
    );
    expect(failure(() => parseCpu('arm::2', ['cpu'])).message).toBe(
      'cpu: CPU spec contains empty token: arm::2',
    );
  });
});

describe('gpu', () => {
  const gpu = (fields: object) => ({ ...noGpu, count: { min: 1, max: null }, ...fields });

  it.each([
    ['A100', gpu({ name: ['A100'] })],
    ['A100,H100:2', gpu({ name: ['A100', 'H100'], count: { min: 2, max: 2 } })],
    ['24GB..', gpu({ memory: { min: 24, max: null } })],
    [
      'nvidia:80GB:8',
      gpu({ vendor: 'nvidia', memory: { min: 80, max: 80 }, count: { min: 8, max: 8 } }),
    ],
    [
      'A100:80GB:2',
      gpu({ name: ['A100'], memory: { min: 80, max: 80 }, count: { min: 2, max: 2 } }),
    ],
    ['2', gpu({ count: { min: 2, max: 2 } })],
    [2, gpu({ count: { min: 2, max: 2 } })],
    ['1..4', gpu({ count: { min: 1, max: 4 } })],
    ['amd:MI300X:8', gpu({ vendor: 'amd', name: ['MI300X'], count: { min: 8, max: 8 } })],
    ['tpu:v5litepod-8', gpu({ vendor: 'google', name: ['v5litepod-8'] })],
    ['tt:n150', gpu({ vendor: 'tenstorrent', name: ['n150'] })],
    ['tpu-v5litepod-8', gpu({ vendor: 'google', name: ['v5litepod-8'] })],
    [
      { name: 'H100', count: '2..', compute_capability: 7.5 },
      gpu({ name: ['H100'], count: { min: 2, max: null }, compute_capability: [7, 5] }),
    ],
    [
      { vendor: 'NVIDIA', total_memory: '160GB..', compute_capability: '8.0' },
      gpu({ vendor: 'nvidia', total_memory: { min: 160, max: null }, compute_capability: [8, 0] }),
    ],
    [{ count: 0 }, gpu({ count: { min: 0, max: 0 } })],
  ])('%j', (input, expected) => {
    expect(parseGpu(input, ['gpu'])).toEqual(expected);
  });

  it('rejects conflicting and empty tokens', () => {
    expect(failure(() => parseGpu('A100:H100', ['gpu'])).message).toBe(
      'gpu: GPU spec name conflict: A100:H100',
    );
    expect(failure(() => parseGpu('nvidia:amd', ['gpu'])).message).toBe(
      'gpu: GPU spec vendor conflict: nvidia:amd',
    );
    expect(failure(() => parseGpu('A100,:2', ['gpu'])).message).toBe(
      'gpu: GPU name can not be empty: A100,:2',
    );
    expect(failure(() => parseGpu('A100::2', ['gpu'])).message).toBe(
      'gpu: GPU spec contains empty token: A100::2',
    );
    expect(failure(() => parseGpu({ vendor: 'acme' }, ['gpu'])).message).toBe(
      "gpu.vendor: invalid GPU vendor: 'acme'",
    );
    expect(failure(() => parseGpu('4..2', ['gpu'])).message).toBe(
      'gpu.count: min is greater than max',
    );
  });
});
