import type { MemberRecord, ProjectRecord, UserRecord } from '../records.js';
import type { DefaultPermissions } from '../settings.js';

/** A role inside one project. */
export type ProjectRole = MemberRecord['projectRole'];

/** A role on the whole server. */
export type GlobalRole = UserRecord['globalRole'];

/**
 * The route guards of the original (its dependency classes), by what they let through.
 * `exists` only needs the project to exist; the caller checks access itself.
 */
export type ProjectGuard =
  | 'exists'
  | 'member'
  | 'memberOrPublic'
  | 'manager'
  | 'managerOrPublic'
  | 'managerOrSelfLeave'
  | 'admin';

/** Who asks, in which project, with which membership (null when not a member). */
export interface ProjectAccess {
  user: Pick<UserRecord, 'globalRole'>;
  project: Pick<ProjectRecord, 'isPublic'>;
  role: ProjectRole | null;
}

const roleRank: Record<ProjectRole, number> = { user: 1, manager: 2, admin: 3 };

/** Whether the user is a global admin, who passes every project-level check. */
export function isGlobalAdmin(user: Pick<UserRecord, 'globalRole'>): boolean {
  return user.globalRole === 'admin';
}

/** Whether `role` is at least `min` (admin > manager > user); null is no role at all. */
export function hasProjectRole(role: ProjectRole | null, min: ProjectRole): boolean {
  return role !== null && roleRank[role] >= roleRank[min];
}

/** A global admin or a project admin. */
export function isProjectAdmin(
  user: Pick<UserRecord, 'globalRole'>,
  role: ProjectRole | null,
): boolean {
  return isGlobalAdmin(user) || hasProjectRole(role, 'admin');
}

/** A global admin, a project admin or a project manager. */
export function isProjectManager(
  user: Pick<UserRecord, 'globalRole'>,
  role: ProjectRole | null,
): boolean {
  return isGlobalAdmin(user) || hasProjectRole(role, 'manager');
}

/** `User.permissions.can_create_projects` of the wire. */
export function canCreateProjects(
  user: Pick<UserRecord, 'globalRole'>,
  permissions: DefaultPermissions,
): boolean {
  return isGlobalAdmin(user) || permissions.allowNonAdminsCreateProjects;
}

/** `Member.permissions.can_manage_ssh_fleets`: applying or deleting fleets with ssh_config. */
export function canManageSshFleets(
  user: Pick<UserRecord, 'globalRole'>,
  role: ProjectRole | null,
  permissions: DefaultPermissions,
): boolean {
  return isProjectAdmin(user, role) || permissions.allowNonAdminsManageSshFleets;
}

/** `Member.permissions.can_manage_secrets`: managers only when config.yml allows it. */
export function canManageSecrets(
  user: Pick<UserRecord, 'globalRole'>,
  role: ProjectRole | null,
  permissions: DefaultPermissions,
): boolean {
  if (isProjectAdmin(user, role)) {
    return true;
  }

  return role === 'manager' && permissions.allowManagersManageSecrets;
}

/** Whether a route guard lets this user through to this (existing) project. */
export function passesProjectGuard(guard: ProjectGuard, access: ProjectAccess): boolean {
  const { user, project, role } = access;

  switch (guard) {
    case 'exists':
      return true;
    case 'member':
    case 'managerOrSelfLeave':
      return isGlobalAdmin(user) || role !== null;
    case 'memberOrPublic':
      return isGlobalAdmin(user) || role !== null || project.isPublic;
    case 'manager':
      return isProjectManager(user, role);
    case 'managerOrPublic':
      return isProjectManager(user, role) || project.isPublic;
    case 'admin':
      return isProjectAdmin(user, role);
  }
}
