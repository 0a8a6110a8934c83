import type { BackendRecord, MemberRecord, ProjectRecord, UserRecord } from '../records.js';
import type { DefaultPermissions } from '../settings.js';
import { canManageSecrets, canManageSshFleets } from '../services/access.js';
import { toWireTime } from '../util/time.js';
import { toUser } from './user.js';
import type { User } from './user.js';

/** What a member may do in the project, derived from roles and `default_permissions`. */
export interface MemberPermissions {
  can_manage_ssh_fleets: boolean;
  can_manage_secrets: boolean;
}

/** A project membership on the wire. */
export interface Member {
  user: User;
  project_role: 'admin' | 'manager' | 'user';
  permissions: MemberPermissions;
}

/** A backend of a project as `projects/{p}/get` shows it: its config without credentials. */
export interface ProjectBackendInfo {
  name: string;
  config: Record<string, unknown>;
}

/** A project on the wire. */
export interface Project {
  project_id: string;
  project_name: string;
  owner: User;
  created_at: string | null;
  backends: ProjectBackendInfo[];
  members: Member[];
  is_public: boolean;
  templates_repo: string | null;
}

/** `projects/list` with `return_total_count`. */
export interface ProjectsInfoList {
  total_count: number | null;
  projects: Project[];
}

/** The wire form of one membership. */
export function toMember(
  member: MemberRecord,
  user: UserRecord,
  permissions: DefaultPermissions,
): Member {
  return {
    user: toUser(user, permissions),
    project_role: member.projectRole,
    permissions: {
      can_manage_ssh_fleets: canManageSshFleets(user, member.projectRole, permissions),
      can_manage_secrets: canManageSecrets(user, member.projectRole, permissions),
    },
  };
}

/** The wire form of a backend row, without its credentials. */
export function toProjectBackendInfo(backend: BackendRecord): ProjectBackendInfo {
  const config = (backend.config ?? {}) as Record<string, unknown>;
  return { name: backend.type, config: { type: backend.type, ...config } };
}

/** What the wire form of a project is built from. */
export interface ProjectParts {
  project: ProjectRecord;
  owner: UserRecord;
  /** Memberships with their users, in membership order; empty in list results. */
  members: readonly { member: MemberRecord; user: UserRecord }[];
  backends: readonly BackendRecord[];
}

/** The wire form of a stored project. */
export function toProject(parts: ProjectParts, permissions: DefaultPermissions): Project {
  const { project } = parts;

  return {
    project_id: project.id,
    project_name: project.name,
    owner: toUser(parts.owner, permissions),
    created_at: toWireTime(project.createdAt),
    backends: parts.backends.map(toProjectBackendInfo),
    members: parts.members.map(({ member, user }) => toMember(member, user, permissions)),
    is_public: project.isPublic,
    templates_repo: project.templatesRepo,
  };
}
