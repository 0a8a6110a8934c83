import type { FastifyRequest } from 'fastify';
import {
  AccessDeniedError,
  authenticateToken,
  findMember,
  findProjectByName,
  InvalidTokenError,
  isGlobalAdmin,
  NotAuthenticatedError,
  passesProjectGuard,
  ProjectNotFoundError,
} from '@dstack/core';
import type { MemberRecord, ProjectGuard, ProjectRecord, UserRecord } from '@dstack/core';

/** What a project route knows once its guard passed. */
export interface ProjectScope {
  user: UserRecord;
  project: ProjectRecord;
  /** The caller's membership; null for a global admin or a public-project visitor. */
  member: MemberRecord | null;
}

const authenticated = new WeakMap<FastifyRequest, UserRecord>();

/** The bearer token of the request, or null when there is no `Bearer` header. */
export function bearerToken(request: FastifyRequest): string | null {
  const header = request.headers.authorization;

  if (header === undefined) {
    return null;
  }

  const match = /^\s*bearer\s+(\S+)\s*$/i.exec(header);
  return match === null ? null : (match[1] as string);
}

/**
 * The authenticated user: 401 "Not authenticated" without a bearer token, 403 "Invalid
 * token" for an unknown, deactivated or deleted user's token.
 */
export async function requireUser(request: FastifyRequest): Promise<UserRecord> {
  const known = authenticated.get(request);

  if (known !== undefined) {
    return known;
  }

  const token = bearerToken(request);

  if (token === null) {
    throw new NotAuthenticatedError();
  }

  const user = await authenticateToken(request.server.dstack, token);

  if (user === null) {
    throw new InvalidTokenError();
  }

  authenticated.set(request, user);
  return user;
}

/** The authenticated global admin; 403 "Access denied" for anyone else. */
export async function requireGlobalAdmin(request: FastifyRequest): Promise<UserRecord> {
  const user = await requireUser(request);

  if (!isGlobalAdmin(user)) {
    throw new AccessDeniedError();
  }

  return user;
}

/**
 * Authenticates, finds the project named by the `project_name` path parameter
 * (case-insensitively; 404 when missing) and applies the guard (403 when it fails).
 */
export async function requireProject(
  request: FastifyRequest,
  guard: ProjectGuard,
): Promise<ProjectScope> {
  const user = await requireUser(request);
  const name = (request.params as { project_name?: string }).project_name ?? '';
  const { store } = request.server.dstack;
  const project = await findProjectByName(store, name);

  if (project === undefined) {
    throw new ProjectNotFoundError();
  }

  const member = (await findMember(store, project.id, user.id)) ?? null;
  const role = member === null ? null : member.projectRole;

  if (!passesProjectGuard(guard, { user, project, role })) {
    throw new AccessDeniedError();
  }

  return { user, project, member };
}
