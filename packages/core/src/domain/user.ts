import type { Cipher } from '../ports/cipher.js';
import type { UserRecord } from '../records.js';
import type { DefaultPermissions } from '../settings.js';
import { canCreateProjects } from '../services/access.js';
import { toWireTime } from '../util/time.js';

/** What a user may do on the server, derived from the role and `default_permissions`. */
export interface UserPermissions {
  can_create_projects: boolean;
}

/** A user on the wire. */
export interface User {
  id: string;
  username: string;
  created_at: string | null;
  global_role: 'admin' | 'user';
  email: string | null;
  active: boolean;
  permissions: UserPermissions;
  ssh_public_key: string | null;
}

/** A user with its token and private key, for the user itself or a global admin. */
export interface UserWithCreds extends User {
  creds: { token: string };
  ssh_private_key: string | null;
}

/** `users/list` with `return_total_count`. */
export interface UsersInfoList {
  total_count: number | null;
  users: User[];
}

/** The wire form of a stored user. */
export function toUser(record: UserRecord, permissions: DefaultPermissions): User {
  return {
    id: record.id,
    username: record.name,
    created_at: toWireTime(record.createdAt),
    global_role: record.globalRole,
    email: record.email,
    active: record.active,
    permissions: { can_create_projects: canCreateProjects(record, permissions) },
    ssh_public_key: record.sshPublicKey,
  };
}

/** The wire form of a stored user with its decrypted token and private key. */
export function toUserWithCreds(
  record: UserRecord,
  permissions: DefaultPermissions,
  cipher: Cipher,
): UserWithCreds {
  return {
    ...toUser(record, permissions),
    creds: { token: cipher.decrypt(record.token) },
    ssh_private_key: record.sshPrivateKey === null ? null : cipher.decrypt(record.sshPrivateKey),
  };
}
