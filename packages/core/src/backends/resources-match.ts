import type { InstanceResources, Range, Requirements } from '../domain/resources.js';

const mibPerGb = 1024;

function below(value: number, range: Range | null | undefined): boolean {
  return range?.min !== null && range?.min !== undefined && value < range.min;
}

function above(value: number, range: Range | null | undefined): boolean {
  return range?.max !== null && range?.max !== undefined && value > range.max;
}

function gb(mib: number): string {
  return `${Math.round((mib / mibPerGb) * 10) / 10}GB`;
}

/**
 * Why a machine of these resources cannot take a job with these requirements, or null when
 * it can. Minimums are checked against the whole machine (a job may use less of it); GPU
 * name, vendor and per-GPU memory are checked only when the job asks for GPUs.
 */
export function resourcesMismatch(
  resources: InstanceResources,
  requirements: Requirements,
): string | null {
  const spec = requirements.resources;

  if (requirements.spot === true && !resources.spot) {
    return 'the job needs a spot instance';
  }

  if (spec.cpu?.arch && resources.cpu_arch !== null && spec.cpu.arch !== resources.cpu_arch) {
    return `the job needs ${spec.cpu.arch} CPUs, the machine has ${resources.cpu_arch}`;
  }

  if (below(resources.cpus, spec.cpu?.count)) {
    return `the job needs at least ${spec.cpu.count.min} CPUs, the machine has ${resources.cpus}`;
  }

  if (below(resources.memory_mib / mibPerGb, spec.memory)) {
    return `the job needs at least ${spec.memory.min}GB of memory, ` +
      `the machine has ${gb(resources.memory_mib)}`;
  }

  if (below(resources.disk.size_mib / mibPerGb, spec.disk?.size)) {
    return `the job needs at least ${spec.disk.size.min}GB of disk, ` +
      `the machine has ${gb(resources.disk.size_mib)}`;
  }

  return gpuMismatch(resources, requirements);
}

function gpuMismatch(resources: InstanceResources, requirements: Requirements): string | null {
  const gpu = requirements.resources.gpu;

  if (gpu === null || gpu === undefined) {
    return null;
  }

  const wanted = gpu.count?.min ?? 0;

  if (wanted === 0) {
    return above(resources.gpus.length, gpu.count) ? 'the job needs a machine without GPUs' : null;
  }

  const fitting = resources.gpus.filter((device) => {
    const vendorOk = gpu.vendor === null || device.vendor.toLowerCase() === gpu.vendor;
    const nameOk = gpu.name === null || gpu.name.length === 0 ||
      gpu.name.some((name) => name.toLowerCase() === device.name.toLowerCase());
    const memoryGb = device.memory_mib / mibPerGb;
    return vendorOk && nameOk && !below(memoryGb, gpu.memory) && !above(memoryGb, gpu.memory);
  });

  if (fitting.length < wanted) {
    const names = gpu.name && gpu.name.length > 0 ? ` ${gpu.name.join(' or ')}` : '';
    const have = resources.gpus.length === 0
      ? 'the machine has none'
      : `the machine has ${resources.gpus.map((device) => device.name).join(', ')}`;
    return `the job needs ${wanted}${names} GPU(s), ${have}`;
  }

  const totalGb = fitting.reduce((sum, device) => sum + device.memory_mib, 0) / mibPerGb;

  if (below(totalGb, gpu.total_memory)) {
    return `the job needs ${gpu.total_memory?.min}GB of GPU memory in total, ` +
      `the machine has ${totalGb}GB`;
  }

  return null;
}
