import type { JobSpec } from '../domain/job.js';
import type { JobProvisioningData, Requirements } from '../domain/resources.js';
import type { RunSpec } from '../domain/run.js';

/** The default image the original names in job specs; the local backend runs none. */
export const defaultImageName = 'dstackai/base:py3.12-0.10-cuda-12.1';

/** Default `stop_duration` in seconds. */
export const defaultStopDurationSeconds = 300;

const profileKeys = [
  'backends', 'regions', 'availability_zones', 'instance_types', 'reservation', 'spot_policy',
  'retry', 'max_duration', 'stop_duration', 'max_price', 'creation_policy', 'idle_duration',
  'utilization_policy', 'startup_order', 'stop_criteria', 'schedule', 'fleets', 'instances',
  'tags', 'backend_options',
] as const;

/** Profile parameters with the configuration's own values laid over `run_spec.profile`. */
export function runProfileParams(spec: RunSpec): Record<string, unknown> {
  const merged: Record<string, unknown> = { ...((spec.profile as object | null) ?? {}) };

  for (const key of profileKeys) {
    const value = spec.configuration[key];

    if (value !== null && value !== undefined) {
      merged[key] = value;
    }
  }

  return merged;
}

/** A duration field as seconds: `off`, false and null are no limit; numbers are seconds. */
export function durationSeconds(value: unknown): number | null {
  if (typeof value === 'number') {
    return value;
  }

  if (typeof value === 'string' && value !== 'off') {
    const match = /^(\d+)\s*([smhdw]?)$/.exec(value.trim());

    if (match !== null) {
      const unit: Record<string, number> = { '': 1, s: 1, m: 60, h: 3600, d: 86400, w: 604800 };
      return Number(match[1]) * unit[match[2]!]!;
    }
  }

  return null;
}

const allRetryEvents = ['no-capacity', 'interruption', 'error'];

/** The job's `retry` from the merged profile: `true` is every event for an hour. */
export function retryOf(profile: Record<string, unknown>): JobSpec['retry'] {
  const retry = profile.retry;

  if (retry === true) {
    return { on_events: allRetryEvents, duration: 3600 };
  }

  if (retry === null || retry === undefined || retry === false || typeof retry !== 'object') {
    return null;
  }

  const value = retry as { on_events?: string[] | null; duration?: unknown };

  return {
    on_events: value.on_events ?? allRetryEvents,
    duration: durationSeconds(value.duration) ?? 3600,
  };
}

/** How many jobs one replica of a run has (nodes of a task, one otherwise). */
export function nodesOf(spec: RunSpec): number {
  const nodes = spec.configuration.nodes;

  if (spec.configuration.type !== 'task') {
    return 1;
  }

  if (typeof nodes === 'number') {
    return nodes;
  }

  if (nodes !== null && typeof nodes === 'object' && 'min' in nodes) {
    return Number((nodes as { min: number }).min) || 1;
  }

  return 1;
}

/**
 * How many replicas a run starts with (services: the minimum of `replicas`).
 * TODO: autoscaling between min and max is not done yet (see scheduler/service-replicas.ts).
 */
export function replicasOf(spec: RunSpec): number {
  if (spec.configuration.type !== 'service') {
    return 1;
  }

  const replicas = spec.configuration.replicas;

  if (typeof replicas === 'number') {
    return replicas;
  }

  if (Array.isArray(replicas)) {
    return replicas.reduce((sum: number, group: { count?: { min?: number } | number }) => {
      const count = typeof group.count === 'number' ? group.count : (group.count?.min ?? 1);
      return sum + count;
    }, 0);
  }

  if (replicas !== null && typeof replicas === 'object') {
    return Number((replicas as { min?: number }).min ?? 1);
  }

  return 1;
}

function envObject(env: unknown): Record<string, string> {
  const result: Record<string, string> = {};

  if (Array.isArray(env)) {
    for (const item of env) {
      if (typeof item === 'string') {
        const at = item.indexOf('=');

        if (at > 0) {
          result[item.slice(0, at)] = item.slice(at + 1);
        }
      }
    }

    return result;
  }

  if (env !== null && typeof env === 'object') {
    for (const [key, value] of Object.entries(env)) {
      if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
        result[key] = String(value);
      }
    }
  }

  return result;
}

/** The shell command lines a job runs, before any wrapping. */
export function commandLinesOf(spec: RunSpec): string[] {
  const configuration = spec.configuration;
  const lines: string[] = [];
  const setup = configuration.setup;

  if (Array.isArray(setup)) {
    lines.push(...setup.map(String));
  }

  if (configuration.type === 'dev-environment') {
    const init = configuration.init;

    if (Array.isArray(init)) {
      lines.push(...init.map(String));
    }

    // A dev environment lives until it is stopped or inactive; the IDE attaches over SSH.
    lines.push('sleep infinity');
    return lines;
  }

  const commands = configuration.commands;

  if (Array.isArray(commands)) {
    lines.push(...commands.map(String));
  }

  return lines;
}

function portsOf(spec: RunSpec): JobSpec['app_specs'] {
  const ports = spec.configuration.ports;

  if (!Array.isArray(ports) || ports.length === 0) {
    return null;
  }

  return ports.map((port: unknown, index: number) => {
    if (typeof port === 'number') {
      return { port, map_to_port: port, app_name: `app${index}` };
    }

    const mapping = port as { local_port?: number | null; container_port: number };
    return {
      port: mapping.container_port,
      map_to_port: mapping.local_port ?? null,
      app_name: `app${index}`,
    };
  });
}

function servicePortOf(spec: RunSpec): number | null {
  if (spec.configuration.type !== 'service') {
    return null;
  }

  const port = spec.configuration.port;

  if (typeof port === 'number') {
    return port;
  }

  if (port !== null && typeof port === 'object' && 'container_port' in port) {
    return Number((port as { container_port: number }).container_port);
  }

  return null;
}

/** What building the jobs of a run needs besides its spec. */
export interface BuildJobSpecsOptions {
  runName: string;
  requirements: Requirements;
  replicaNum?: number;
}

/** The job specs of one replica of a run, one per node, from its effective run spec. */
export function buildJobSpecs(spec: RunSpec, options: BuildJobSpecsOptions): JobSpec[] {
  const configuration = spec.configuration;
  const profile = runProfileParams(spec);
  const nodes = nodesOf(spec);
  const replicaNum = options.replicaNum ?? 0;
  const lines = commandLinesOf(spec);
  const shell = typeof configuration.shell === 'string' ? configuration.shell : '/bin/bash';
  const stopDuration = profile.stop_duration === undefined || profile.stop_duration === null
    ? defaultStopDurationSeconds
    : durationSeconds(profile.stop_duration);
  const specs: JobSpec[] = [];

  for (let jobNum = 0; jobNum < nodes; jobNum += 1) {
    specs.push({
      replica_num: replicaNum,
      job_num: jobNum,
      job_name: `${options.runName}-${jobNum}-${replicaNum}`,
      jobs_per_replica: nodes,
      replica_group: '0',
      app_specs: portsOf(spec),
      user: null,
      commands: [shell, '-i', '-c', lines.join(' && ')],
      env: envObject(configuration.env),
      home_dir: typeof configuration.home_dir === 'string' ? configuration.home_dir : '/root',
      image_name: typeof configuration.image === 'string' ? configuration.image : defaultImageName,
      privileged: configuration.privileged === true,
      single_branch: typeof configuration.single_branch === 'boolean'
        ? configuration.single_branch
        : null,
      max_duration: durationSeconds(profile.max_duration),
      stop_duration: stopDuration,
      utilization_policy: profile.utilization_policy ?? null,
      registry_auth: configuration.registry_auth ?? null,
      requirements: options.requirements,
      retry: retryOf(profile),
      volumes: [],
      ssh_key: null,
      working_dir: typeof configuration.working_dir === 'string' ? configuration.working_dir : null,
      repo_data: spec.repo_data ?? { repo_type: 'virtual' },
      repo_code_hash: (spec.repo_code_hash as string | null | undefined) ?? null,
      repo_dir: (spec.repo_dir as string | null | undefined) ?? null,
      repo_exists_action: null,
      file_archives: (spec.file_archives as unknown[] | undefined) ?? [],
      service_port: servicePortOf(spec),
      probes: [],
      node_group_index: 0,
      node_group_name: '0',
      node_group_job_index: jobNum,
    });
  }

  return specs;
}

/** What the cluster env of one job is built from. */
export interface ClusterInfo {
  runId: string;
  runName: string;
  repoId: string;
  jobSubmissionId: string;
  jobSpec: JobSpec;
  /** Provisioning data of every node of the replica, by job number. */
  nodes: readonly JobProvisioningData[];
}

function nodeAddress(data: JobProvisioningData): string {
  return data.internal_ip ?? data.hostname ?? '127.0.0.1';
}

/**
 * The variables every job gets from dstack (run, repo, cluster and GPUs), laid over the
 * job's own env so that the user cannot override them by accident.
 * TODO: DSTACK_MPI_HOSTFILE needs the agent to write the hostfile on each node.
 */
export function dstackEnv(info: ClusterInfo): Record<string, string> {
  const ips = info.nodes.map(nodeAddress);
  const own = info.nodes[info.jobSpec.job_num] ?? info.nodes[0];
  const gpusPerNode = own?.instance_type.resources.gpus.length ?? 0;

  return {
    DSTACK_RUN_ID: info.runId,
    DSTACK_RUN_NAME: info.runName,
    DSTACK_JOB_ID: info.jobSubmissionId,
    DSTACK_REPO_ID: info.repoId,
    DSTACK_NODE_RANK: String(info.jobSpec.job_num),
    DSTACK_NODES_NUM: String(info.jobSpec.jobs_per_replica),
    DSTACK_MASTER_NODE_IP: ips[0] ?? '127.0.0.1',
    DSTACK_NODES_IPS: ips.join('\n'),
    DSTACK_GPUS_PER_NODE: String(gpusPerNode),
    DSTACK_GPUS_NUM: String(gpusPerNode * info.jobSpec.jobs_per_replica),
    DSTACK_REPLICA_NUM: String(info.jobSpec.replica_num),
  };
}
