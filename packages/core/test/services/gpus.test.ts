import { describe, expect, it } from 'vitest';
import { groupGpus, ServerClientError } from '@dstack/core';
import type { InstanceOffer, OfferAvailability } from '@dstack/core';

interface OfferInput {
  backend: string;
  region: string;
  price: number;
  gpus: [string, number][];
  spot?: boolean;
  availability?: OfferAvailability;
}

function offer(input: OfferInput): InstanceOffer {
  return {
    backend: input.backend,
    instance: {
      name: `${input.backend}-${input.gpus.length}`,
      resources: {
        cpus: 8,
        memory_mib: 65536,
        gpus: input.gpus.map(([name, memory]) => ({ name, memory_mib: memory, vendor: 'nvidia' })),
        spot: input.spot ?? false,
        disk: { size_mib: 102400 },
        cpu_arch: 'x86',
        description: '',
      },
    },
    region: input.region,
    price: input.price,
    backend_data: {},
    availability: input.availability ?? 'available',
    availability_zones: null,
    instance_runtime: 'shim',
    blocks: 1,
    total_blocks: 1,
  };
}

const a100 = ['A100', 81920] as [string, number];
const t4 = ['T4', 16384] as [string, number];

const offers = [
  offer({ backend: 'aws', region: 'us-east-1', price: 4, gpus: [a100] }),
  offer({ backend: 'aws', region: 'eu-west-1', price: 10, gpus: [a100, a100] }),
  offer({ backend: 'gcp', region: 'us-central1', price: 3, gpus: [a100], spot: true }),
  offer({ backend: 'gcp', region: 'us-central1', price: 1, gpus: [t4],
    availability: 'not_available' }),
  offer({ backend: 'gcp', region: 'europe-west4', price: 0.5, gpus: [] }),
];

describe('groupGpus', () => {
  it('merges every backend without grouping, cheapest available first', () => {
    expect(groupGpus(offers, null)).toEqual([
      {
        name: 'A100', memory_mib: 81920, vendor: 'nvidia',
        availability: ['available'], spot: ['on-demand', 'spot'],
        count: { min: 1, max: 2 }, price: { min: 3, max: 5 }, backends: ['aws', 'gcp'],
      },
      {
        name: 'T4', memory_mib: 16384, vendor: 'nvidia',
        availability: ['not_available'], spot: ['on-demand'],
        count: { min: 1, max: 1 }, price: { min: 1, max: 1 }, backends: ['gcp'],
      },
    ]);
  });

  it('groups by backend with the backend\'s regions, and by backend and region', () => {
    const byBackend = groupGpus(offers, ['backend']);
    expect(byBackend.map((row) => [row.name, row.backend, row.price])).toEqual([
      ['A100', 'gcp', { min: 3, max: 3 }],
      ['A100', 'aws', { min: 4, max: 5 }],
      ['T4', 'gcp', { min: 1, max: 1 }],
    ]);
    expect(byBackend[0]!.regions).toEqual(['europe-west4', 'us-central1']);
    expect(byBackend[0]!.backends).toBeUndefined();

    const byRegion = groupGpus(offers, ['backend', 'region']);
    expect(byRegion.map((row) => [row.name, row.backend, row.region, row.count])).toEqual([
      ['A100', 'gcp', 'us-central1', { min: 1, max: 1 }],
      ['A100', 'aws', 'us-east-1', { min: 1, max: 1 }],
      ['A100', 'aws', 'eu-west-1', { min: 2, max: 2 }],
      ['T4', 'gcp', 'us-central1', { min: 1, max: 1 }],
    ]);
    expect(Object.keys(byRegion[0]!)).not.toContain('regions');
  });

  it('groups by count', () => {
    const byCount = groupGpus(offers, ['count']);
    expect(byCount.map((row) => [row.name, row.count.min, row.backends])).toEqual([
      ['A100', 1, ['aws', 'gcp']],
      ['A100', 2, ['aws']],
      ['T4', 1, ['gcp']],
    ]);
  });

  it('refuses region without backend', () => {
    expect(() => groupGpus(offers, ['region'])).toThrow(ServerClientError);
    expect(() => groupGpus(offers, ['region'])).toThrow(
      "Cannot group by 'region' without also grouping by 'backend'",
    );
  });
});
