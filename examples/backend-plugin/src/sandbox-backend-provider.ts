import { mkdir, statfs } from 'node:fs/promises';
import { availableParallelism, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { resourcesMismatch } from '@dstack/core';
import type {
  BackendProvider,
  InstanceOffer,
  InstanceResources,
  JobProvisioningData,
} from '@dstack/core';
import { createSandboxAgent } from './sandbox-agent.js';
import type { SandboxJobs } from './sandbox-agent.js';

export interface SandboxBackendOptions {
  /** Where jobs get their scratch directories (default: a `dstack-sandbox` temp dir). */
  scratchDir?: string;
  /** Price per hour of one CPU in an offer (default 0.01). */
  pricePerCpu?: number;
}

/** The config a project gives the sandbox backend: nothing but its type. */
export const sandboxConfigSchema = {
  type: 'object',
  properties: { type: { const: 'sandbox' } },
  required: ['type'],
  additionalProperties: false,
} as const;

function sized(cpus: number, memoryMib: number, diskMib: number): InstanceResources {
  return {
    cpus,
    memory_mib: memoryMib,
    gpus: [],
    spot: false,
    disk: { size_mib: diskMib },
    cpu_arch: 'x86',
    description: '',
  };
}

/**
 * A backend plugin that runs jobs as sandboxed child processes of the server. It sells
 * slices of this machine: one instance per CPU count up to the machine's, priced by CPU,
 * with the free space of the scratch directory as disk.
 */
export function createSandboxBackendProvider(options: SandboxBackendOptions = {}): BackendProvider {
  const scratchDir = options.scratchDir ?? join(tmpdir(), 'dstack-sandbox');
  const pricePerCpu = options.pricePerCpu ?? 0.01;
  const jobs: SandboxJobs = new Map();
  const memoryPerCpuMib = Math.floor(totalmem() / 1024 / 1024 / availableParallelism());

  async function offers(): Promise<InstanceOffer[]> {
    await mkdir(scratchDir, { recursive: true });
    const disk = await statfs(scratchDir);
    const diskMib = Math.floor((disk.bavail * disk.bsize) / 1024 / 1024);

    return Array.from({ length: availableParallelism() }, (_, index) => {
      const cpus = index + 1;
      const resources = sized(cpus, cpus * memoryPerCpuMib, diskMib);
      return {
        backend: 'sandbox',
        instance: { name: `sandbox-${cpus}cpu`, resources },
        region: 'sandbox',
        price: Math.round(cpus * pricePerCpu * 10_000) / 10_000,
        backend_data: {},
        availability: 'available',
        availability_zones: null,
        instance_runtime: 'runner',
        blocks: 1,
        total_blocks: 1,
      };
    });
  }

  return {
    type: 'sandbox',
    capabilities: { images: false, multinode: false },
    configSchema: sandboxConfigSchema,

    async getOffers(request) {
      return (await offers()).filter((offer) =>
        resourcesMismatch(offer.instance.resources, request.requirements) === null);
    },

    async createInstance(request): Promise<JobProvisioningData> {
      return {
        backend: 'sandbox',
        base_backend: null,
        instance_type: request.offer.instance,
        instance_id: request.instanceId,
        hostname: '127.0.0.1',
        internal_ip: '127.0.0.1',
        public_ip_enabled: false,
        instance_network: null,
        region: 'sandbox',
        availability_zone: null,
        reservation: null,
        price: request.offer.price,
        username: 'sandbox',
        ssh_port: null,
        dockerized: false,
        ssh_proxy: null,
        backend_data: JSON.stringify({ scratchDir }),
        gpu_driver: null,
      };
    },

    async terminateInstance() {
      // A sandbox instance is only a name; its jobs end when the scheduler removes them.
    },

    agent() {
      return createSandboxAgent({ jobs, scratchDir, pageSize: 500 });
    },
  };
}
