import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ServerClientError } from '@dstack/core';

/** A parsed `major.minor.patch` version, with any pre-release part ignored for the rule. */
export interface ParsedVersion {
  major: number;
  minor: number;
  patch: number;
  prerelease: string | null;
}

const versionPattern = /^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:[-.+]?([0-9A-Za-z.+-]*))?$/;

/** Parses a client or server version; null when it is not a version at all. */
export function parseVersion(text: string): ParsedVersion | null {
  const match = versionPattern.exec(text.trim());

  if (match === null || text.trim() === '') {
    return null;
  }

  const prerelease = match[4] === undefined || match[4] === '' ? null : match[4];

  if (prerelease !== null && !/^[0-9A-Za-z]+(?:[.+-][0-9A-Za-z]+)*$/.test(prerelease)) {
    return null;
  }

  return {
    major: Number(match[1]),
    minor: Number(match[2] ?? 0),
    patch: Number(match[3] ?? 0),
    prerelease,
  };
}

/** Whether a version string means a development build (no check, no compatibility patches). */
export function isDevVersion(text: string | null | undefined): boolean {
  if (text === null || text === undefined) {
    return true;
  }

  const trimmed = text.trim();
  return trimmed === 'latest' || trimmed.startsWith('0.0.0');
}

function compare(a: ParsedVersion, b: ParsedVersion): number {
  return a.major - b.major || a.minor - b.minor || a.patch - b.patch;
}

/**
 * Checks a client's `X-API-VERSION` against the server's version (§6): unparsable is 400
 * with a null code; a client newer in major or minor is rejected; anything older is fine.
 */
export function checkClientVersion(
  clientVersion: string | undefined,
  serverVersion: string | null,
): void {
  if (clientVersion === undefined || isDevVersion(clientVersion)) {
    return;
  }

  const client = parseVersion(clientVersion);

  if (client === null) {
    throw new InvalidVersionError(clientVersion);
  }

  if (serverVersion === null || isDevVersion(serverVersion)) {
    return;
  }

  const server = parseVersion(serverVersion);

  if (server === null) {
    return;
  }

  const newer = compare(client, server) > 0;

  if (newer && (client.major > server.major || client.minor > server.minor)) {
    throw new ServerClientError(
      `The client/CLI version (${clientVersion}) is incompatible with the server version ` +
        `(${serverVersion}).`,
    );
  }
}

/** The 400 for an unparsable version header: the original sends a null `code`. */
export class InvalidVersionError extends ServerClientError {
  constructor(value: string) {
    super(`Invalid version: ${value}`);
  }

  override body(): { detail: { msg: string; code: null }[] } {
    return { detail: [{ msg: this.message, code: null }] };
  }
}

function needsVersionCheck(request: FastifyRequest): boolean {
  const path = request.url.split('?')[0] ?? '';

  if (request.routeOptions.url === undefined) {
    return false;
  }

  return path.startsWith('/api/') && path !== '/api/docs' && !path.startsWith('/api/docs/');
}

/** The app-wide version check; it runs after body parsing and before any route's own checks. */
export function installApiVersionCheck(app: FastifyInstance, serverVersion: string | null): void {
  app.addHook('preValidation', async (request) => {
    if (!needsVersionCheck(request)) {
      return;
    }

    const header = request.headers['x-api-version'];
    const value = Array.isArray(header) ? header[0] : header;
    checkClientVersion(value, serverVersion);
  });
}
