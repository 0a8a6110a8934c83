import type { InstanceResources, JobProvisioningData } from '../domain/resources.js';
import type { Logger } from '../ports/logger.js';
import { silentLogger } from '../ports/logger.js';
import type { Condition, StateAccess } from '../ports/state-store.js';
import type { JobMetricsPointRecord, JobRecord } from '../records.js';
import { parseWireTime } from '../util/time.js';

/** One metric of `metrics/job`: a value per timestamp, newest first. */
export interface JobMetric {
  name: string;
  timestamps: string[];
  values: number[];
}

/** The wire `JobMetrics`. */
export interface JobMetrics {
  metrics: JobMetric[];
}

/** Which samples `getJobMetrics` reads; every bound is optional. */
export interface JobMetricsQuery {
  /** At most this many samples, the newest; null or absent means all. */
  limit?: number | null;
  /** Only samples taken at or after this time, in microseconds since the epoch. */
  afterMicro?: number | null;
  /** Only samples taken before this time, in microseconds since the epoch. */
  beforeMicro?: number | null;
}

const mib = 1024 * 1024;

// More samples than any TTL keeps; it stops a huge `limit` from reaching the database as is.
const maxLimit = 1_000_000;

/**
 * Formats microseconds since the epoch as the API writes datetimes: ISO-8601 in UTC with a
 * `Z`, and six fractional digits only when the fraction is not zero.
 */
export function toWireTimeMicro(micro: number): string {
  const seconds = Math.floor(micro / 1_000_000);
  const fraction = micro - seconds * 1_000_000;
  const iso = new Date(seconds * 1000).toISOString().slice(0, 19);

  return fraction === 0 ? `${iso}Z` : `${iso}.${String(fraction).padStart(6, '0')}Z`;
}

/**
 * Parses a request datetime (as `parseWireTime` accepts it) into microseconds since the
 * epoch, keeping the microseconds; null when it is not a datetime.
 */
export function parseWireTimeMicro(value: string): number | null {
  const text = value.trim();
  const fraction = /^[^.]*\.(\d+)/.exec(text)?.[1];
  const millis = parseWireTime(fraction === undefined ? text : text.replace(`.${fraction}`, ''));

  if (millis === null) {
    return null;
  }

  const micro = fraction === undefined ? 0 : Number(fraction.slice(0, 6).padEnd(6, '0'));
  return millis * 1000 + micro;
}

/**
 * The metrics of one job, newest first, as the original computes them: CPU usage comes from
 * consecutive samples, so one sample more than `limit` is read and fewer than two give none.
 * `after` is inclusive for the same reason; `before` is exclusive.
 */
export async function getJobMetrics(
  store: StateAccess,
  job: JobRecord,
  query: JobMetricsQuery = {},
  logger: Logger = silentLogger,
): Promise<JobMetrics> {
  const limit = query.limit ?? null;

  if (limit !== null && limit < 1) {
    return { metrics: [] };
  }

  const timestampMicro: Condition<number> = {};

  if (query.afterMicro !== undefined && query.afterMicro !== null) {
    timestampMicro.gte = query.afterMicro;
  }

  if (query.beforeMicro !== undefined && query.beforeMicro !== null) {
    timestampMicro.lt = query.beforeMicro;
  }

  const points = await store.find('job_metrics_points', {
    where: Object.keys(timestampMicro).length === 0
      ? { jobId: job.id }
      : { jobId: job.id, timestampMicro },
    orderBy: [['timestampMicro', 'desc']],
    ...(limit === null ? {} : { limit: Math.min(limit, maxLimit) + 1 }),
  });

  if (points.length < 2) {
    return { metrics: [] };
  }

  return computeJobMetrics(job, points, logger);
}

/**
 * Turns samples (newest first, at least two) into the metrics the API returns: every sample
 * but the oldest gets a value. GPU metrics are left out when the number of GPUs changes
 * within the samples, since GPUs are told apart by position only.
 */
export function computeJobMetrics(
  job: JobRecord,
  points: readonly JobMetricsPointRecord[],
  logger: Logger = silentLogger,
): JobMetrics {
  const timestamps: string[] = [];
  const cpuUsage: number[] = [];
  const memoryUsage: number[] = [];
  const memoryWorkingSet: number[] = [];
  const gpuMemoryUsage: number[][] = [];
  const gpuUtil: number[][] = [];
  let gpusDetected: number | null = null;
  let gpusMismatch = false;

  for (let index = 0; index + 1 < points.length; index += 1) {
    const point = points[index];
    const gpuMemory = point.gpusMemoryUsageBytes ?? [];
    const gpuPercent = point.gpusUtilPercent ?? [];
    timestamps.push(toWireTimeMicro(point.timestampMicro));
    cpuUsage.push(cpuUsagePercent(point, points[index + 1]));
    memoryUsage.push(point.memoryUsageBytes);
    memoryWorkingSet.push(point.memoryWorkingSetBytes);
    gpusDetected ??= gpuMemory.length;

    if (gpuMemory.length !== gpusDetected || gpuPercent.length !== gpusDetected) {
      gpusMismatch = true;
    }

    if (!gpusMismatch) {
      for (let gpu = 0; gpu < gpusDetected; gpu += 1) {
        (gpuMemoryUsage[gpu] ??= []).push(gpuMemory[gpu]);
        (gpuUtil[gpu] ??= []).push(gpuPercent[gpu]);
      }
    }
  }

  const constant = (name: string, value: number): JobMetric => ({
    name,
    timestamps,
    values: timestamps.map(() => value),
  });
  const metrics: JobMetric[] = [
    { name: 'cpu_usage_percent', timestamps, values: cpuUsage },
    { name: 'memory_usage_bytes', timestamps, values: memoryUsage },
    { name: 'memory_working_set_bytes', timestamps, values: memoryWorkingSet },
  ];
  const resources = resourcesOf(job);

  if (resources !== null) {
    metrics.push(constant('cpus_detected_num', resources.cpus));
    metrics.push(constant('memory_total_bytes', resources.memory_mib * mib));
  }

  if (gpusMismatch) {
    logger.warn({ jobId: job.id }, 'gpus_detected_num mismatch, skipping GPU metrics');
    return { metrics };
  }

  metrics.push(constant('gpus_detected_num', gpusDetected ?? 0));

  if (resources !== null && resources.gpus.length > 0) {
    metrics.push(constant('gpu_memory_total_bytes', resources.gpus[0].memory_mib * mib));
  }

  gpuMemoryUsage.forEach((values, gpu) => {
    metrics.push({ name: `gpu_memory_usage_bytes_gpu${gpu}`, timestamps, values });
  });
  gpuUtil.forEach((values, gpu) => {
    metrics.push({ name: `gpu_util_percent_gpu${gpu}`, timestamps, values });
  });

  return { metrics };
}

/** CPU use between two samples, in percent of one CPU (so 200 is two busy CPUs). */
function cpuUsagePercent(point: JobMetricsPointRecord, previous: JobMetricsPointRecord): number {
  const window = point.timestampMicro - previous.timestampMicro;

  if (window === 0) {
    return 0;
  }

  return roundHalfEven(((point.cpuUsageMicro - previous.cpuUsageMicro) / window) * 100);
}

// The original rounds as Python does: a tie goes to the even neighbour.
function roundHalfEven(value: number): number {
  const floor = Math.floor(value);
  const rest = value - floor;

  if (rest !== 0.5) {
    return Math.round(value);
  }

  return floor % 2 === 0 ? floor : floor + 1;
}

/** The resources of the instance the job runs on: its offer's, else the instance type's. */
function resourcesOf(job: JobRecord): InstanceResources | null {
  const runtime = job.runtimeData as { offer?: { instance?: { resources?: unknown } } } | null;
  const fromOffer = runtime?.offer?.instance?.resources;

  if (isResources(fromOffer)) {
    return fromOffer;
  }

  const fromInstance = (job.provisioningData as JobProvisioningData | null)?.instance_type
    ?.resources;
  return isResources(fromInstance) ? fromInstance : null;
}

function isResources(value: unknown): value is InstanceResources {
  const resources = value as Partial<InstanceResources> | null | undefined;

  return typeof resources?.cpus === 'number' && typeof resources.memory_mib === 'number' &&
    Array.isArray(resources.gpus);
}
