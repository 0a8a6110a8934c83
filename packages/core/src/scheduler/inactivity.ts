import type { JobRecord } from '../records.js';
import type { SchedulerRuntime } from './runtime.js';

const limitsByRuntime = new WeakMap<SchedulerRuntime, Map<string, number | null>>();

/** Cached limits are dropped past this many runs; they are re-read on the next pass. */
const maxCachedRuns = 10_000;

/**
 * The `inactivity_duration` (seconds) of a dev environment job, or null for other jobs and
 * for dev environments without one. Read once per run and deployment, not on every pull.
 */
export async function inactivityLimitOf(
  rt: SchedulerRuntime,
  job: JobRecord,
): Promise<number | null> {
  let limits = limitsByRuntime.get(rt);

  if (limits === undefined) {
    limits = new Map();
    limitsByRuntime.set(rt, limits);
  }

  const key = `${job.runId}:${job.deploymentNum}`;

  if (limits.has(key)) {
    return limits.get(key) ?? null;
  }

  const run = await rt.ctx.store.get('runs', job.runId);
  const configuration = (run?.runSpec as { configuration?: Record<string, unknown> } | undefined)
    ?.configuration;
  const value = configuration?.['inactivity_duration'];
  const limit = configuration?.['type'] === 'dev-environment' && typeof value === 'number'
    ? value
    : null;

  if (limits.size >= maxCachedRuns) {
    limits.clear();
  }

  limits.set(key, limit);
  return limit;
}

/**
 * Whether a running dev environment has been inactive past its limit. No agent can report
 * IDE connections yet, so a dev environment counts as inactive since it was submitted.
 */
export function inactivityExceeded(job: JobRecord, limitSeconds: number, now: number): boolean {
  // TODO: count from the last IDE connection once agents report connections.
  return now - job.submittedAt >= limitSeconds * 1000;
}
