import type { CoreContext } from '../context.js';
import { ForbiddenError, ServerClientError } from '../errors/server-errors.js';
import type { StateAccess } from '../ports/state-store.js';
import type { MemberRecord, ProjectRecord, UserRecord } from '../records.js';
import { newId } from '../util/ids.js';
import { isGlobalAdmin } from './access.js';
import type { ProjectRole } from './access.js';
import { listProjectMembers } from './projects.js';

/** One entry of `set_members` / `add_members`: a username or an email, and a role. */
export interface MemberSetting {
  username: string;
  projectRole: ProjectRole;
}

function checkNoDuplicates(members: readonly MemberSetting[]): void {
  if (new Set(members.map((member) => member.username)).size !== members.length) {
    throw new ServerClientError('Cannot add same user multiple times');
  }
}

/** Non-deleted users by username, and by email for those that have one. */
async function usersByNameOrEmail(
  access: StateAccess,
  names: readonly string[],
): Promise<(name: string) => UserRecord | undefined> {
  const users = await access.find('users', {
    where: { deleted: false, $or: [{ name: { in: names } }, { email: { in: names } }] },
  });
  const byName = new Map(users.map((user) => [user.name, user]));
  const byEmail = new Map(
    users.filter((user) => user.email !== null).map((user) => [user.email as string, user]),
  );

  return (name) => byName.get(name) ?? byEmail.get(name);
}

function roleOf(
  members: readonly { member: MemberRecord; user: UserRecord }[],
  userId: string,
): ProjectRole | null {
  return members.find(({ member }) => member.userId === userId)?.member.projectRole ?? null;
}

/**
 * Replaces the member list in the given order; unknown users are skipped. A project manager
 * (not a global admin) may not change who the project admins are.
 */
export async function setProjectMembers(
  ctx: CoreContext,
  actor: UserRecord,
  project: ProjectRecord,
  members: readonly MemberSetting[],
): Promise<void> {
  checkNoDuplicates(members);

  await ctx.store.transaction(async (tx) => {
    const current = await listProjectMembers(tx, project.id);

    if (!isGlobalAdmin(actor) && roleOf(current, actor.id) === 'manager') {
      const wanted = members.filter((member) => member.projectRole === 'admin');
      const admins = current.filter(({ member }) => member.projectRole === 'admin');
      const wantedKeys = new Set(wanted.map((member) => member.username));
      const adminKeys = new Set(admins.map(({ user }) => user.name));
      const same =
        wantedKeys.size === adminKeys.size && [...wantedKeys].every((key) => adminKeys.has(key));

      if (!same) {
        throw new ForbiddenError('Access denied: changing project admins');
      }
    }

    const find = await usersByNameOrEmail(tx, members.map((member) => member.username));
    await tx.delete('members', { projectId: project.id });

    const added = new Set<string>();
    const rows: MemberRecord[] = [];

    members.forEach((setting, index) => {
      const user = find(setting.username);

      if (user === undefined || added.has(user.id)) {
        return;
      }

      added.add(user.id);
      rows.push({
        id: newId(),
        projectId: project.id,
        userId: user.id,
        projectRole: setting.projectRole,
        memberNum: index,
      });
    });

    if (rows.length > 0) {
      await tx.insert('members', rows);
    }
  });
}

/**
 * Adds members or changes the role of existing ones. Managers may not grant `admin`; a
 * non-member may only join a public project, as `user`.
 */
export async function addProjectMembers(
  ctx: CoreContext,
  actor: UserRecord,
  project: ProjectRecord,
  members: readonly MemberSetting[],
): Promise<void> {
  checkNoDuplicates(members);

  await ctx.store.transaction(async (tx) => {
    const current = await listProjectMembers(tx, project.id);
    const actorRole = roleOf(current, actor.id);
    const only = members.length === 1 ? members[0] : undefined;
    const selfJoin =
      only !== undefined &&
      project.isPublic &&
      actorRole === null &&
      (only.username === actor.name || only.username === actor.email);

    if (selfJoin) {
      if (only.projectRole !== 'user') {
        throw new ForbiddenError('Access denied: can only join public projects as user role');
      }
    } else if (!isGlobalAdmin(actor)) {
      if (actorRole !== 'admin' && actorRole !== 'manager') {
        throw new ForbiddenError('Access denied: insufficient permissions to add members');
      }

      if (actorRole === 'manager' && members.some((member) => member.projectRole === 'admin')) {
        throw new ForbiddenError('Access denied: only global admins can add project admins');
      }
    }

    const find = await usersByNameOrEmail(tx, members.map((member) => member.username));
    let nextNum = current.reduce((max, { member }) => Math.max(max, member.memberNum), -1) + 1;

    for (const setting of members) {
      const user = find(setting.username);

      if (user === undefined) {
        throw new ServerClientError(`User not found: ${setting.username}`);
      }

      const existing = current.find(({ member }) => member.userId === user.id);

      if (existing !== undefined) {
        const patch = { projectRole: setting.projectRole };
        await tx.update('members', { id: existing.member.id }, patch);
        continue;
      }

      await tx.insert('members', {
        id: newId(),
        projectId: project.id,
        userId: user.id,
        projectRole: setting.projectRole,
        memberNum: nextNum,
      });
      nextNum += 1;
    }
  });
}

/**
 * Removes members. Leaving alone (one name, the caller's) needs only membership; otherwise a
 * project admin or manager is needed, only a global admin removes admins, and at least one
 * admin always stays.
 */
export async function removeProjectMembers(
  ctx: CoreContext,
  actor: UserRecord,
  project: ProjectRecord,
  usernames: readonly string[],
): Promise<void> {
  await ctx.store.transaction(async (tx) => {
    const current = await listProjectMembers(tx, project.id);
    const actorRole = roleOf(current, actor.id);
    const selfLeave =
      usernames.length === 1 &&
      actorRole !== null &&
      (usernames[0] === actor.name || usernames[0] === actor.email);

    if (!selfLeave && !isGlobalAdmin(actor) && actorRole !== 'admin' && actorRole !== 'manager') {
      throw new ForbiddenError('Access denied: insufficient permissions to remove members');
    }

    const find = await usersByNameOrEmail(tx, usernames);
    const totalAdmins = current.filter(({ member }) => member.projectRole === 'admin').length;
    const removed: MemberRecord[] = [];
    let adminRemovals = 0;

    for (const name of usernames) {
      const user = find(name);

      if (user === undefined) {
        throw new ServerClientError(`User not found: ${name}`);
      }

      const entry = current.find(({ member }) => member.userId === user.id);

      if (entry === undefined) {
        throw new ServerClientError(`User is not a member of this project: ${name}`);
      }

      if (entry.member.projectRole === 'admin') {
        if (selfLeave && totalAdmins <= 1) {
          throw new ServerClientError('Cannot leave project: you are the last admin');
        }

        if (!selfLeave && !isGlobalAdmin(actor)) {
          throw new ForbiddenError(
            `Access denied: only global admins can remove project admins (user: ${name})`,
          );
        }

        adminRemovals += 1;
      }

      removed.push(entry.member);
    }

    if (!selfLeave && adminRemovals > 0 && adminRemovals >= totalAdmins) {
      throw new ServerClientError('Cannot remove all project admins');
    }

    await tx.delete('members', { id: { in: removed.map((member) => member.id) } });
  });
}
