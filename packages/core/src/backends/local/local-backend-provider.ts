import { createHash } from 'node:crypto';
import { access, mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import type {
  InstanceOffer,
  InstanceResources,
  JobProvisioningData,
} from '../../domain/resources.js';
import type {
  BackendProvider,
  CreateInstanceRequest,
  InstanceAgent,
  OffersRequest,
  TerminateInstanceRequest,
} from '../../ports/backend-provider.js';
import type { Logger } from '../../ports/logger.js';
import { silentLogger } from '../../ports/logger.js';
import { resourcesMismatch } from '../resources-match.js';
import { detectHostResources } from './host-resources.js';
import { createLocalAgent } from './local-agent.js';
import { localRunnerSource } from './runner-source.js';

export interface LocalBackendProviderOptions {
  /** The server's directory; jobs live under `<serverDir>/local/jobs/<submission id>/`. */
  serverDir: string;
  logger?: Logger;
  /** The `nvidia-smi` asked for GPUs and their use (default: the one on PATH). */
  nvidiaSmiPath?: string;
  /** At most this many log events per pull (default 1000). */
  pullPageSize?: number;
  /** How long detected resources are reused before they are measured again. */
  resourcesCacheMillis?: number;
}

/** The local backend as the API shows it: a backend config with no fields but its type. */
export const localBackendConfigSchema = {
  type: 'object',
  properties: { type: { const: 'local' } },
  required: ['type'],
  additionalProperties: false,
} as const;

/**
 * The `local` backend: instances are slots on this machine and jobs run as process groups
 * of the server's own user, with no container. Jobs outlive the server process.
 */
export function createLocalBackendProvider(options: LocalBackendProviderOptions): BackendProvider {
  const log = (options.logger ?? silentLogger).child({ backend: 'local' });
  const rootDir = join(options.serverDir, 'local');
  const jobsDir = join(rootDir, 'jobs');
  const pageSize = options.pullPageSize ?? 1000;
  const cacheMillis = options.resourcesCacheMillis ?? 60_000;
  let measured: { at: number; resources: Promise<InstanceResources> } | null = null;
  let runnerWritten: Promise<string> | null = null;

  function hostResources(): Promise<InstanceResources> {
    if (measured === null || Date.now() - measured.at > cacheMillis) {
      const resources = detectHostResources({
        diskPath: options.serverDir,
        nvidiaSmiPath: options.nvidiaSmiPath,
      });
      measured = { at: Date.now(), resources };
      resources.catch(() => {
        measured = null;
      });
    }

    return measured.resources;
  }

  function runnerPath(): Promise<string> {
    runnerWritten ??= writeRunner(rootDir).catch((error: unknown) => {
      runnerWritten = null;
      throw error;
    });
    return runnerWritten;
  }

  async function getOffers(request: OffersRequest): Promise<InstanceOffer[]> {
    const resources = await hostResources();
    const mismatch = resourcesMismatch(resources, request.requirements);

    if (mismatch !== null) {
      log.debug({ projectName: request.projectName, mismatch }, 'no local offer');
      return [];
    }

    return [{
      backend: 'local',
      instance: { name: 'local', resources },
      region: 'local',
      price: 0,
      backend_data: {},
      availability: 'available',
      availability_zones: null,
      instance_runtime: 'runner',
      blocks: 1,
      total_blocks: 1,
    }];
  }

  async function createInstance(request: CreateInstanceRequest): Promise<JobProvisioningData> {
    await mkdir(jobsDir, { recursive: true, mode: 0o700 });
    log.info({ instanceName: request.instanceName, instanceId: request.instanceId }, 'local slot');

    return {
      backend: 'local',
      base_backend: null,
      instance_type: request.offer.instance,
      instance_id: request.instanceId,
      hostname: '127.0.0.1',
      internal_ip: '127.0.0.1',
      public_ip_enabled: false,
      instance_network: null,
      region: 'local',
      availability_zone: null,
      reservation: null,
      price: 0,
      username: userInfo().username,
      ssh_port: null,
      dockerized: false,
      ssh_proxy: null,
      backend_data: null,
      gpu_driver: null,
    };
  }

  function agent(provisioningData: JobProvisioningData): InstanceAgent {
    return createLocalAgent({
      jobsDir,
      instanceId: provisioningData.instance_id,
      runnerPath,
      logger: log,
      pageSize,
      nvidiaSmiPath: options.nvidiaSmiPath,
    });
  }

  async function terminateInstance(request: TerminateInstanceRequest): Promise<void> {
    const instanceId = request.provisioningData.instance_id;
    const slotAgent = agent(request.provisioningData);

    // An instance that goes away takes its processes with it, as a VM would.
    for (const id of await jobsOfInstance(jobsDir, instanceId)) {
      await slotAgent.stop(id, { force: true });
    }

    log.info({ instanceId }, 'local slot released');
  }

  return {
    type: 'local',
    capabilities: { images: false, multinode: true, sharedHostPorts: true },
    configSchema: localBackendConfigSchema,
    getOffers,
    createInstance,
    terminateInstance,
    agent,
  };
}

async function jobsOfInstance(jobsDir: string, instanceId: string): Promise<string[]> {
  const names = await readdir(jobsDir).catch(() => [] as string[]);
  const ids: string[] = [];

  for (const name of names) {
    try {
      const spec = JSON.parse(await readFile(join(jobsDir, name, 'job.json'), 'utf8')) as {
        instanceId?: string;
      };

      if (spec.instanceId === instanceId) {
        ids.push(name);
      }
    } catch {
      // a directory being created or removed right now
    }
  }

  return ids;
}

/** Writes the runner under a name of its content's hash, so versions never mix. */
async function writeRunner(rootDir: string): Promise<string> {
  const hash = createHash('sha256').update(localRunnerSource).digest('hex').slice(0, 12);
  const path = join(rootDir, `runner-${hash}.cjs`);

  try {
    await access(path);
    return path;
  } catch {
    // not written yet
  }

  await mkdir(rootDir, { recursive: true, mode: 0o700 });
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, localRunnerSource, { mode: 0o600 });
  await rename(temporary, path);
  return path;
}
