import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { contractRequirements, runBackendProviderContract } from '@dstack/core/testing';
import { createSandboxBackendProvider } from '../src/index.js';

const scratchDirs: string[] = [];

runBackendProviderContract('sandbox plugin', async () => {
  const scratchDir = await mkdtemp(join(tmpdir(), 'sandbox-contract-'));
  scratchDirs.push(scratchDir);
  return createSandboxBackendProvider({ scratchDir });
}, {
  cleanup: async () => {
    for (const dir of scratchDirs) {
      await rm(dir, { recursive: true, force: true });
    }
  },
});

describe('sandbox offers', () => {
  afterAll(async () => {
    for (const dir of scratchDirs) {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('sells one instance per CPU count, cheapest first, priced by CPU', async () => {
    const scratchDir = await mkdtemp(join(tmpdir(), 'sandbox-offers-'));
    scratchDirs.push(scratchDir);
    const provider = createSandboxBackendProvider({ scratchDir, pricePerCpu: 0.5 });
    const settings = { projectName: 'main', config: { type: 'sandbox' }, creds: null };

    const offers = await provider.getOffers({ ...settings, requirements: contractRequirements(1) });

    expect(offers.length).toBeGreaterThan(0);
    expect(offers.map((offer) => offer.price)).toEqual(offers.map((_, index) => (index + 1) * 0.5));
    expect(offers[0].instance.name).toBe('sandbox-1cpu');

    const two = await provider.getOffers({ ...settings, requirements: contractRequirements(2) });
    expect(two.every((offer) => offer.instance.resources.cpus >= 2)).toBe(true);
  });
});
