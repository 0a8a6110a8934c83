/** Wire shapes of resources, offers and provisioning data (snake_case, as on the wire). */

/** An inclusive range; a null bound is open. */
export interface Range {
  min: number | null;
  max: number | null;
}

export interface CpuSpec {
  arch: 'x86' | 'arm' | null;
  count: Range;
}

export interface GpuSpec {
  vendor: 'nvidia' | 'amd' | 'google' | 'intel' | 'tenstorrent' | null;
  name: string[] | null;
  count: Range;
  /** GB per GPU. */
  memory: Range | null;
  /** GB over all GPUs. */
  total_memory: Range | null;
  compute_capability: [number, number] | null;
}

/** The normalised `resources` of a configuration. Memory and disk are in GB. */
export interface ResourcesSpec {
  cpu: CpuSpec;
  memory: Range;
  shm_size: number | null;
  gpu: GpuSpec;
  disk: { size: Range };
}

export interface Gpu {
  name: string;
  memory_mib: number;
  vendor: string;
}

export interface InstanceResources {
  cpus: number;
  memory_mib: number;
  gpus: Gpu[];
  spot: boolean;
  disk: { size_mib: number };
  cpu_arch: string | null;
  description: string;
}

export interface InstanceType {
  name: string;
  resources: InstanceResources;
}

export type OfferAvailability =
  | 'unknown'
  | 'available'
  | 'not_available'
  | 'no_quota'
  | 'no_balance'
  | 'idle'
  | 'busy';

export interface InstanceOffer {
  backend: string;
  instance: InstanceType;
  region: string;
  price: number;
  backend_data: Record<string, unknown>;
  availability: OfferAvailability;
  availability_zones: string[] | null;
  instance_runtime: 'shim' | 'runner';
  blocks: number;
  total_blocks: number;
}

/** What a job needs from an instance. */
export interface Requirements {
  resources: ResourcesSpec;
  max_price: number | null;
  spot: boolean | null;
  reservation: string | null;
  multinode: boolean | null;
}

/** Where a job or an instance runs, as the wire's `job_provisioning_data`. */
export interface JobProvisioningData {
  backend: string;
  base_backend: string | null;
  instance_type: InstanceType;
  instance_id: string;
  hostname: string | null;
  internal_ip: string | null;
  public_ip_enabled: boolean;
  instance_network: string | null;
  region: string;
  availability_zone: string | null;
  reservation: string | null;
  price: number;
  username: string;
  ssh_port: number | null;
  dockerized: boolean;
  ssh_proxy: { hostname: string; username: string; port: number } | null;
  backend_data: string | null;
  gpu_driver: { vendor: string | null; version: string } | null;
}
