import type {
  Profile,
  ProfileParams,
  ProfileRetry,
  RetryEvent,
  Schedule,
  UtilizationPolicy,
} from '../domain/configurations.js';
import {
  configurationError,
  isPlainObject,
  setOwn,
  type FieldPath,
} from './configuration-error.js';
import { validateCron } from './cron.js';
import { parseDuration, parseIdleDuration, parseOffDuration } from './duration.js';
import { parseEntityReference, parseInstanceSelector } from './references.js';
import { createInputSchema } from './schema-validation.js';
import { profileSchema } from './schemas.js';

type Input = Record<string, unknown>;

const TAG_KEY = /^[_\-a-zA-Z0-9]{1,60}$/;
const TAG_VALUE = /^[a-zA-Z0-9 .:/=_\-+@]{0,256}$/;
const MIN_UTILIZATION_TIME_WINDOW_SECONDS = 300;

/** The names of the `ProfileParams` fields, in the original's order. */
export const profileParamNames = [
  'backends',
  'regions',
  'availability_zones',
  'instance_types',
  'reservation',
  'spot_policy',
  'retry',
  'max_duration',
  'stop_duration',
  'max_price',
  'creation_policy',
  'idle_duration',
  'utilization_policy',
  'startup_order',
  'stop_criteria',
  'schedule',
  'fleets',
  'instances',
  'tags',
  'backend_options',
] as const satisfies readonly (keyof ProfileParams)[];

function strings(value: unknown): string[] | null {
  return Array.isArray(value) ? value.map(String) : null;
}

function textOrNull(value: unknown): string | null {
  return value == null ? null : String(value);
}

/** Reads `retry`: a bool, or `{on_events?, duration?}` whose `on_events` may not be empty. */
export function parseRetry(value: unknown, path: FieldPath): ProfileRetry | boolean | null {
  if (value == null || typeof value === 'boolean') {
    return value ?? null;
  }

  const retry = value as Input;
  const onEvents = Array.isArray(retry.on_events) ? (retry.on_events as RetryEvent[]) : null;
  if (onEvents !== null && onEvents.length === 0) {
    throw configurationError([...path, 'on_events'], '`on_events` cannot be empty');
  }

  return {
    on_events: onEvents === null ? null : [...onEvents],
    duration: retry.duration == null ? null : parseDuration(retry.duration, [...path, 'duration']),
  };
}

/** Reads `tags`, whose keys and values must suit the tag rules of most clouds. */
export function parseTags(value: unknown, path: FieldPath): Record<string, string> | null {
  if (!isPlainObject(value)) {
    return null;
  }

  const tags: Record<string, string> = {};
  for (const [key, raw] of Object.entries(value)) {
    const tag = String(raw);
    if (!TAG_KEY.test(key)) {
      throw configurationError(
        [...path, key],
        `invalid tag key ${key}. The key must match regex '${TAG_KEY.source}'`,
      );
    }

    if (!TAG_VALUE.test(tag)) {
      throw configurationError(
        [...path, key],
        `invalid tag value ${tag}. The value must match regex '${TAG_VALUE.source}'`,
      );
    }

    setOwn(tags, key, tag);
  }

  return tags;
}

/** Reads `backend_options`: at most one entry per backend type, missing options as null. */
export function parseBackendOptions(
  value: unknown,
  path: FieldPath,
): Record<string, unknown>[] | null {
  if (!Array.isArray(value)) {
    return null;
  }

  const seen = new Set<string>();

  return value.map((raw, index) => {
    const options = raw as Input;
    const type = String(options.type);
    if (seen.has(type)) {
      throw configurationError(
        [...path, index],
        `backend_options contains duplicate entry for backend '${type}'`,
      );
    }

    seen.add(type);

    return {
      type,
      offer_order: options.offer_order ?? null,
      min_reliability: options.min_reliability ?? null,
      min_score: options.min_score ?? null,
    };
  });
}

function parseUtilizationPolicy(value: unknown, path: FieldPath): UtilizationPolicy | null {
  if (value == null) {
    return null;
  }

  const policy = value as Input;
  const timeWindow = parseDuration(policy.time_window, [...path, 'time_window']);
  if (timeWindow < MIN_UTILIZATION_TIME_WINDOW_SECONDS) {
    throw configurationError([...path, 'time_window'], 'minimum time_window is 5m');
  }

  return { min_gpu_utilization: Number(policy.min_gpu_utilization), time_window: timeWindow };
}

function parseSchedule(value: unknown, path: FieldPath): Schedule | null {
  if (value == null) {
    return null;
  }

  const raw = (value as Input).cron;
  const cron = Array.isArray(raw) ? raw.map(String) : [String(raw)];
  if (cron.length === 0) {
    throw configurationError([...path, 'cron'], 'at least one cron expression must be specified');
  }

  cron.forEach((expression, index) =>
    validateCron(expression, Array.isArray(raw) ? [...path, 'cron', index] : [...path, 'cron']),
  );

  return { cron };
}

/**
 * Normalises the `ProfileParams` fields of a schema-checked object: durations to seconds,
 * references to objects, `schedule.cron` to a list. Fields not given are null.
 */
export function normaliseProfileParams(input: Input, path: FieldPath): ProfileParams {
  const at = (key: string): FieldPath => [...path, key];

  return {
    backends: strings(input.backends),
    regions: strings(input.regions),
    availability_zones: strings(input.availability_zones),
    instance_types: strings(input.instance_types),
    reservation: textOrNull(input.reservation),
    spot_policy: (input.spot_policy ?? null) as ProfileParams['spot_policy'],
    retry: parseRetry(input.retry, at('retry')),
    max_duration: parseOffDuration(input.max_duration, at('max_duration')),
    stop_duration: parseOffDuration(input.stop_duration, at('stop_duration')),
    max_price: (input.max_price ?? null) as number | null,
    creation_policy: (input.creation_policy ?? null) as ProfileParams['creation_policy'],
    idle_duration: parseIdleDuration(input.idle_duration, at('idle_duration')),
    utilization_policy: parseUtilizationPolicy(input.utilization_policy, at('utilization_policy')),
    startup_order: (input.startup_order ?? null) as ProfileParams['startup_order'],
    stop_criteria: (input.stop_criteria ?? null) as ProfileParams['stop_criteria'],
    schedule: parseSchedule(input.schedule, at('schedule')),
    fleets: Array.isArray(input.fleets)
      ? input.fleets.map((fleet, index) => parseEntityReference(fleet, [...at('fleets'), index]))
      : null,
    instances: Array.isArray(input.instances)
      ? input.instances.map((item, index) =>
          parseInstanceSelector(item, [...at('instances'), index]),
        )
      : null,
    tags: parseTags(input.tags, at('tags')),
    backend_options: parseBackendOptions(input.backend_options, at('backend_options')),
  };
}

const profileInput = createInputSchema(profileSchema);

/** Parses a profile at `path` (`profile` by default): its name, `default` flag and params. */
export function parseProfileAt(input: unknown, path: FieldPath): Profile {
  profileInput.validate(input, path);
  const profile = input as Input;

  return {
    name: profile.name == null ? '' : String(profile.name),
    default: profile.default === true,
    ...normaliseProfileParams(profile, path),
  };
}

/** Parses a standalone profile (`RunSpec.profile`, `FleetSpec.profile`). */
export function parseProfile(input: unknown): Profile {
  return parseProfileAt(input, ['profile']);
}

/** A profile with every parameter unset. */
export function emptyProfile(name = ''): Profile {
  const params = Object.fromEntries(profileParamNames.map((key) => [key, null]));

  return { name, default: false, ...(params as unknown as ProfileParams) };
}
