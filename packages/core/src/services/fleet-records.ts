import type { FleetSpec } from '../domain/fleet.js';
import type { InstanceRecord } from '../records.js';
import { newId } from '../util/ids.js';
import { durationSeconds } from './jobs.js';

/** Seconds an instance of a fleet's own `nodes.min` stays idle by default: 3 days. */
export const fleetIdleDefaultSeconds = 3 * 24 * 3600;

/** Seconds an instance made for a job stays idle by default: 5 minutes. */
export const jobInstanceIdleDefaultSeconds = 300;

/** The `nodes` of a cloud fleet, with open bounds as null. */
export interface FleetNodeBounds {
  min: number;
  target: number;
  max: number | null;
}

/** The node bounds of a fleet spec; an SSH fleet has none. */
export function fleetNodes(spec: FleetSpec): FleetNodeBounds | null {
  const nodes = spec.configuration.nodes as
    | { min?: number | null; target?: number | null; max?: number | null }
    | number
    | null
    | undefined;

  if (nodes === null || nodes === undefined) {
    return null;
  }

  if (typeof nodes === 'number') {
    return { min: nodes, target: nodes, max: nodes };
  }

  const min = nodes.min ?? 0;
  return { min, target: nodes.target ?? min, max: nodes.max ?? null };
}

/** Whether a fleet spec is an SSH fleet (hosts the user owns). */
export function isSshFleet(spec: FleetSpec): boolean {
  const ssh = spec.configuration.ssh_config;
  return ssh !== null && ssh !== undefined;
}

/** A fleet's `idle_duration` in seconds, -1 when off, or the given default. */
export function fleetIdleSeconds(spec: FleetSpec, fallback: number): number {
  const value = spec.configuration.idle_duration ?? spec.profile?.idle_duration;

  if (value === 'off' || value === false) {
    return -1;
  }

  if (value === null || value === undefined) {
    return fallback;
  }

  const seconds = durationSeconds(value);
  return seconds === null ? fallback : seconds < 0 ? -1 : seconds;
}

/** What a new instance row needs besides its defaults. */
export interface NewInstanceOptions {
  projectId: string;
  fleetId: InstanceRecord['fleetId'];
  fleetName: string;
  instanceNum: number;
  now: number;
  status: InstanceRecord['status'];
  backend: string | null;
  idleSeconds: number;
  profile?: unknown;
}

/** A fresh instance row of a fleet, named `<fleet>-<num>`. */
export function newInstanceRecord(options: NewInstanceOptions): InstanceRecord {
  return {
    id: newId(),
    projectId: options.projectId,
    fleetId: options.fleetId,
    name: `${options.fleetName}-${options.instanceNum}`,
    instanceNum: options.instanceNum,
    createdAt: options.now,
    lastProcessedAt: options.now,
    deleted: false,
    deletedAt: null,
    status: options.status,
    unreachable: false,
    startedAt: null,
    finishedAt: null,
    backend: options.backend,
    region: null,
    availabilityZone: null,
    price: null,
    instanceType: null,
    offer: null,
    provisioningData: null,
    remoteConnectionInfo: null,
    profile: options.profile ?? null,
    totalBlocks: null,
    busyBlocks: 0,
    terminationPolicy: options.idleSeconds < 0 ? 'dont-destroy' : 'destroy-after-idle',
    terminationIdleTime: options.idleSeconds,
    terminationDeadline: null,
    terminationReason: null,
    terminationReasonMessage: null,
    lastJobProcessedAt: null,
    provisioningJobId: null,
    health: 'healthy',
    firstTerminationRetryAt: null,
    lockToken: null,
    lockOwner: null,
    lockExpiresAt: null,
  };
}

/** The lowest instance numbers not taken by the given instances. */
export function freeInstanceNums(taken: readonly InstanceRecord[], count: number): number[] {
  const used = new Set(taken.filter((instance) => !instance.deleted).map((i) => i.instanceNum));
  const nums: number[] = [];

  for (let num = 0; nums.length < count; num += 1) {
    if (!used.has(num)) {
      nums.push(num);
    }
  }

  return nums;
}
