import type { InstanceRecord } from '../records.js';
import { toWireTime, toWireTimeOrNull } from '../util/time.js';
import type { InstanceType, JobProvisioningData } from './resources.js';

/** Instance statuses; `terminating` and `terminated` count as finished. */
export type InstanceStatus =
  | 'pending'
  | 'provisioning'
  | 'idle'
  | 'busy'
  | 'terminating'
  | 'terminated';

export const activeInstanceStatuses: readonly InstanceStatus[] = [
  'pending',
  'provisioning',
  'idle',
  'busy',
];

/** The wire `Instance` (§4.7 of the API spec). */
export interface Instance {
  id: string;
  project_name: string;
  backend: string | null;
  instance_type: InstanceType | null;
  name: string;
  fleet_id: string | null;
  fleet_name: string | null;
  instance_num: number;
  job_name: string | null;
  hostname: string | null;
  status: InstanceStatus;
  unreachable: boolean;
  health_status: 'healthy' | 'warning' | 'failure';
  termination_reason: string | null;
  termination_reason_message: string | null;
  created: string;
  finished_at: string | null;
  region: string | null;
  availability_zone: string | null;
  price: number | null;
  total_blocks: number | null;
  busy_blocks: number;
  gpu_driver: { vendor: string | null; version: string } | null;
}

function healthStatus(health: string): Instance['health_status'] {
  return health === 'warning' || health === 'failure' ? health : 'healthy';
}

/** Serializes an instance row for the wire. */
export function instanceToWire(
  record: InstanceRecord,
  projectName: string,
  fleetName: string | null,
): Instance {
  const provisioning = record.provisioningData as JobProvisioningData | null;
  const instanceType = (record.instanceType as InstanceType | null) ?? null;

  return {
    id: record.id,
    project_name: projectName,
    backend: record.backend,
    instance_type: instanceType === null ? null : withDescription(instanceType),
    name: record.name,
    fleet_id: record.fleetId,
    fleet_name: fleetName,
    instance_num: record.instanceNum,
    job_name: null,
    hostname: provisioning?.hostname ?? null,
    status: record.status as InstanceStatus,
    unreachable: record.unreachable,
    health_status: healthStatus(record.health),
    termination_reason: record.terminationReason,
    termination_reason_message: record.terminationReasonMessage,
    created: toWireTime(record.createdAt),
    finished_at: toWireTimeOrNull(record.finishedAt),
    region: record.region,
    availability_zone: record.availabilityZone,
    price: record.price,
    total_blocks: record.totalBlocks,
    busy_blocks: record.busyBlocks,
    gpu_driver: provisioning?.gpu_driver ?? null,
  };
}

/** The deprecated `description` is always emitted as an empty string. */
function withDescription(type: InstanceType): InstanceType {
  return {
    name: type.name,
    resources: {
      cpus: type.resources.cpus,
      memory_mib: type.resources.memory_mib,
      gpus: type.resources.gpus ?? [],
      spot: type.resources.spot ?? false,
      disk: type.resources.disk ?? { size_mib: 0 },
      cpu_arch: type.resources.cpu_arch ?? null,
      description: '',
    },
  };
}
