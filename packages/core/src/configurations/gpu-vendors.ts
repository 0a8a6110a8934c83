import type { GpuSpec } from '../domain/resources.js';

type GpuVendor = NonNullable<GpuSpec['vendor']>;

// Accelerator model names by vendor, as the original's GPU catalogue knows them (lowercase).
const KNOWN_ACCELERATORS: Record<Exclude<GpuVendor, 'google'>, readonly string[]> = {
  nvidia: [
    'a10', 'a16', 'a40', 'a100', 'a10g', 'a4000', 'a4500', 'a5000', 'a6000', 'h100', 'h100nvl',
    'h200', 'h200nvl', 'b200', 'gb200', 'b300', 'l4', 'l40', 'l40s', 'p100', 'rtx2060',
    'rtx2060super', 'rtx2070', 'rtx2070super', 'rtx2080', 'rtx2080super', 'rtx2080ti',
    'rtx3050', 'rtx3060', 'rtx3060ti', 'rtx3070', 'rtx3070ti', 'rtx3080', 'rtx3080ti',
    'rtx3090', 'rtx3090ti', 'rtx4060', 'rtx4060ti', 'rtx4070', 'rtx4070super', 'rtx4070ti',
    'rtx4070tisuper', 'rtx4080', 'rtx4080super', 'rtx4090', 'rtx5060', 'rtx5060ti', 'rtx5070',
    'rtx5070ti', 'rtx5080', 'rtx5090', 'rtx6000', 'rtx2000ada', 'rtx4000ada', 'rtx6000ada',
    'rtxpro4500', 'rtxpro6000', 't4', 'v100', 'gh200',
  ],
  amd: [
    'mi100', 'mi210', 'mi250', 'mi250x', 'mi300a', 'mi300x', 'mi308x', 'mi325x', 'mi350x',
    'mi355x',
  ],
  intel: ['gaudi', 'gaudi2', 'gaudi3'],
  tenstorrent: ['n150', 'n300', 'tt-galaxy-wh', 'p100a', 'p150', 'p300', 'tt-galaxy-bh'],
};

const TPU_VERSIONS = ['v2', 'v3', 'v4', 'v5p', 'v5litepod', 'v6e'];

/** The vendors that make an accelerator of this name; empty for an unknown name. */
export function gpuVendorsByName(name: string): Set<GpuVendor> {
  const lower = name.toLowerCase();
  const vendors = new Set<GpuVendor>();
  for (const [vendor, names] of Object.entries(KNOWN_ACCELERATORS)) {
    if (names.includes(lower)) {
      vendors.add(vendor as GpuVendor);
    }
  }

  const [version, cores] = lower.split(/-(.*)/s);
  if (cores !== undefined && /^\d+$/.test(cores) && TPU_VERSIONS.includes(version)) {
    vendors.add('google');
  }

  return vendors;
}
