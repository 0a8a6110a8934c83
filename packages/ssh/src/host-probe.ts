import { normalizeGpuName } from '@dstack/core';
import type { Gpu, InstanceResources } from '@dstack/core';

// TODO: detect AMD (amd-smi), Intel and Tenstorrent GPUs; matters for fleets of such hosts.
/**
 * A POSIX sh script, run as `sh -s`, that prints `key=value` lines about the host: what the
 * resources are and whether the agent can run there.
 */
export const hostProbeScript = `
echo "arch=$(uname -m)"
echo "cpus=$(getconf _NPROCESSORS_ONLN 2>/dev/null || nproc 2>/dev/null)"
echo "mem_kib=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo 2>/dev/null)"
echo "disk_kib=$(df -Pk "$HOME" 2>/dev/null | awk 'NR==2 {print $2}')"
echo "home=$HOME"
echo "python=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)"
if command -v ip >/dev/null 2>&1; then
  ip -o addr show 2>/dev/null | awk '{print "addr=" $4}'
elif command -v hostname >/dev/null 2>&1; then
  for a in $(hostname -I 2>/dev/null); do echo "addr=$a"; done
fi
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader,nounits \\
    2>/dev/null | sed 's/^/gpu=/'
fi
exit 0
`;

export interface HostGpu {
  name: string;
  memoryMib: number;
  driverVersion: string | null;
}

/** What the probe found. Numbers the host did not give are NaN. */
export interface HostFacts {
  arch: string;
  cpus: number;
  memoryMib: number;
  diskMib: number;
  home: string;
  /** `major.minor` of python3, or null when there is none. */
  pythonVersion: string | null;
  /** The host's addresses without their prefix length. */
  addresses: string[];
  gpus: HostGpu[];
}

/** Reads the probe's output. */
export function parseHostProbe(output: string): HostFacts {
  const facts: HostFacts = {
    arch: '',
    cpus: Number.NaN,
    memoryMib: Number.NaN,
    diskMib: Number.NaN,
    home: '',
    pythonVersion: null,
    addresses: [],
    gpus: [],
  };
  for (const line of output.split('\n')) {
    const at = line.indexOf('=');
    if (at < 0) {
      continue;
    }

    const key = line.slice(0, at);
    const value = line.slice(at + 1).trim();
    if (key === 'arch') {
      facts.arch = value;
    } else if (key === 'cpus') {
      facts.cpus = value === '' ? Number.NaN : Number(value);
    } else if (key === 'mem_kib') {
      facts.memoryMib = value === '' ? Number.NaN : Math.floor(Number(value) / 1024);
    } else if (key === 'disk_kib') {
      facts.diskMib = value === '' ? Number.NaN : Math.floor(Number(value) / 1024);
    } else if (key === 'home') {
      facts.home = value;
    } else if (key === 'python') {
      facts.pythonVersion = value === '' ? null : value;
    } else if (key === 'addr' && value !== '') {
      facts.addresses.push(value.split('/')[0]);
    } else if (key === 'gpu') {
      const [name, memory, driver] = value.split(',').map((part) => part.trim());
      facts.gpus.push({
        name: normalizeGpuName(name),
        memoryMib: Number(memory),
        driverVersion: driver || null,
      });
    }
  }

  return facts;
}

/** `x86` or `arm`, or null for an architecture the agent does not support (32-bit ones). */
export function cpuArch(unameMachine: string): 'x86' | 'arm' | null {
  if (unameMachine === 'x86_64' || unameMachine === 'amd64') {
    return 'x86';
  }

  if (unameMachine === 'aarch64' || unameMachine === 'arm64') {
    return 'arm';
  }

  return null;
}

/** The instance resources of a host as the wire's `instance_type.resources`. */
export function hostResources(facts: HostFacts, arch: 'x86' | 'arm'): InstanceResources {
  const gpus: Gpu[] = facts.gpus.map((gpu) => ({
    name: gpu.name,
    memory_mib: gpu.memoryMib,
    vendor: 'nvidia',
  }));

  return {
    cpus: facts.cpus,
    memory_mib: facts.memoryMib,
    gpus,
    spot: false,
    disk: { size_mib: facts.diskMib },
    cpu_arch: arch,
    description: '',
  };
}

/**
 * How many blocks a host splits into: `auto` is one per GPU (or per CPU without GPUs); a
 * number must divide the CPUs and the GPUs evenly. Returns null when it cannot.
 */
export function totalBlocks(blocks: number | 'auto', cpus: number, gpus: number): number | null {
  if (blocks === 'auto') {
    return gpus > 0 ? Math.min(cpus, gpus) : cpus;
  }

  if (!Number.isInteger(blocks) || blocks < 1 || cpus % blocks !== 0 || gpus % blocks !== 0) {
    return null;
  }

  return blocks;
}
