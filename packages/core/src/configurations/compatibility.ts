import type {
  ParsedFleetSpec,
  ParsedRunSpec,
  Profile,
  ProfileParams,
} from '../domain/configurations.js';
import { formatEntityReference } from './references.js';

type Version = [major: number, minor: number, patch: number, release: number];

/**
 * Reads an `X-API-VERSION` value for the response patches; null for a missing header, `latest`,
 * `0.0.0*` dev builds and anything unparsable, all of which get no patches.
 */
export function clientVersionForPatches(header: string | null | undefined): Version | null {
  if (header == null || header === 'latest' || header.startsWith('0.0.0')) {
    return null;
  }

  const match = /^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(.*)$/.exec(header.trim());
  if (!match) {
    return null;
  }

  // A pre-release (`0.20.14rc1`) sorts before its release; a post or local suffix does not.
  const suffix = match[4];
  const release = suffix === '' || /^(\.post|\+)/.test(suffix) ? 1 : 0;

  return [Number(match[1]), Number(match[2] ?? 0), Number(match[3] ?? 0), release];
}

function isOlderThan(version: Version, text: string): boolean {
  const other = clientVersionForPatches(text) as Version;
  for (let index = 0; index < version.length; index++) {
    if (version[index] !== other[index]) {
      return version[index] < other[index];
    }
  }

  return false;
}

function patchProfileParams(params: Pick<ProfileParams, 'fleets'>, version: Version): void {
  if (params.fleets !== null && isOlderThan(version, '0.20.14')) {
    params.fleets = params.fleets.map(formatEntityReference);
  }
}

/**
 * A copy of a run spec shaped for the client that sent `clientVersion` (§6): `nodes: 1` on
 * tasks without groups or nodes for every versioned client; for older ones, service
 * `probes: []` (< 0.20.8) and `https: true` (< 0.20.12), fleet references as strings
 * (< 0.20.14) and the gateway reference as a string (< 0.20.20).
 */
export function patchRunSpecForClient(
  spec: ParsedRunSpec,
  clientVersion: string | null | undefined,
): ParsedRunSpec {
  const version = clientVersionForPatches(clientVersion);
  if (version === null) {
    return spec;
  }

  const patched = structuredClone(spec);
  const configuration = patched.configuration;
  if (configuration.type === 'task' && configuration.groups === null) {
    configuration.nodes ??= 1;
  }

  if (configuration.type === 'service') {
    if (configuration.probes === null && isOlderThan(version, '0.20.8')) {
      configuration.probes = [];
    }

    if (configuration.https === null && isOlderThan(version, '0.20.12')) {
      configuration.https = true;
    }

    const gateway = configuration.gateway;
    if (typeof gateway === 'object' && gateway !== null && isOlderThan(version, '0.20.20')) {
      configuration.gateway = formatEntityReference(gateway);
    }
  }

  patchProfileParams(configuration, version);
  if (patched.profile !== null) {
    patchProfileParams(patched.profile, version);
  }

  return patched;
}

/** A copy of a fleet spec shaped for the client: profile fleet references as strings < 0.20.14. */
export function patchFleetSpecForClient(
  spec: ParsedFleetSpec,
  clientVersion: string | null | undefined,
): ParsedFleetSpec {
  const version = clientVersionForPatches(clientVersion);
  if (version === null) {
    return spec;
  }

  const patched = structuredClone(spec);
  patchProfileParams(patched.profile as Profile, version);

  return patched;
}

/**
 * Whether a pre-0.21.0 client's plan request is the `dstack offer` probe: a task whose
 * commands are exactly `[":"]`. Newer clients say so with `for_offers_only`.
 */
export function isOffersOnlyPlan(
  spec: ParsedRunSpec,
  forOffersOnly: boolean,
  clientVersion: string | null | undefined,
): boolean {
  if (forOffersOnly) {
    return true;
  }

  const version = clientVersionForPatches(clientVersion);
  const configuration = spec.configuration;

  return (
    version !== null &&
    isOlderThan(version, '0.21.0') &&
    configuration.type === 'task' &&
    configuration.commands.length === 1 &&
    configuration.commands[0] === ':'
  );
}
