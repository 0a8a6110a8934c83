import { execFile } from 'node:child_process';
import { mkdir, statfs } from 'node:fs/promises';
import { arch, availableParallelism, totalmem } from 'node:os';
import type { Gpu, InstanceResources } from '../../domain/resources.js';

export interface HostResourcesOptions {
  /** A directory on the disk whose size is reported. */
  diskPath: string;
  /** The `nvidia-smi` to ask for GPUs; a missing one means no GPUs. */
  nvidiaSmiPath?: string;
  timeoutMillis?: number;
}

const vendorWords = new Set(['nvidia', 'tesla', 'geforce', 'quadro']);
const suffixWords = /^(\d+gb|hbm\d*e?|pcie|sxm\d*|nvl|mig.*)$/i;

/**
 * Turns a name as `nvidia-smi` prints it into the short name offers use:
 * `NVIDIA A100-SXM4-80GB` becomes `A100`, `NVIDIA GeForce RTX 4090` becomes `RTX4090`.
 */
export function normalizeGpuName(raw: string): string {
  const words = raw
    .trim()
    .split(/\s+/)
    .filter((word) => !vendorWords.has(word.toLowerCase()) && !suffixWords.test(word));
  const joined = words.join('');
  const dash = joined.indexOf('-');
  return dash > 0 ? joined.slice(0, dash) : joined;
}

/**
 * Parses `nvidia-smi --query-gpu=name,memory.total --format=csv,noheader,nounits`: one GPU a
 * line, memory in MiB. Lines that do not parse are skipped.
 */
export function parseNvidiaSmiCsv(text: string): Gpu[] {
  const gpus: Gpu[] = [];

  for (const line of text.split(/\r?\n/)) {
    const comma = line.lastIndexOf(',');

    if (comma <= 0) {
      continue;
    }

    const name = normalizeGpuName(line.slice(0, comma));
    const memoryMib = Number.parseInt(line.slice(comma + 1).trim(), 10);

    if (name !== '' && Number.isFinite(memoryMib)) {
      gpus.push({ name, memory_mib: memoryMib, vendor: 'nvidia' });
    }
  }

  return gpus;
}

/** The GPUs `nvidia-smi` reports, or none when it is missing or fails. */
export function detectNvidiaGpus(
  nvidiaSmiPath = 'nvidia-smi',
  timeoutMillis = 5000,
): Promise<Gpu[]> {
  const args = ['--query-gpu=name,memory.total', '--format=csv,noheader,nounits'];

  return new Promise((resolve) => {
    execFile(nvidiaSmiPath, args, { timeout: timeoutMillis }, (error, stdout) => {
      resolve(error === null ? parseNvidiaSmiCsv(stdout) : []);
    });
  });
}

/** This machine's CPUs, memory, disk and GPUs, as an offer describes an instance. */
export async function detectHostResources(
  options: HostResourcesOptions,
): Promise<InstanceResources> {
  await mkdir(options.diskPath, { recursive: true });
  const disk = await statfs(options.diskPath);
  const gpus = await detectNvidiaGpus(options.nvidiaSmiPath, options.timeoutMillis);

  return {
    cpus: availableParallelism(),
    memory_mib: Math.floor(totalmem() / 1024 / 1024),
    gpus,
    spot: false,
    disk: { size_mib: Math.floor((disk.blocks * disk.bsize) / 1024 / 1024) },
    cpu_arch: cpuArch(),
    description: '',
  };
}

function cpuArch(): string | null {
  switch (arch()) {
    case 'x64':
      return 'x86';
    case 'arm64':
      return 'arm';
    default:
      return null;
  }
}
