import { beforeEach, describe, expect, it } from 'vitest';
import {
  addProjectMembers,
  createCipher,
  createMemoryLogStore,
  createMemoryStateStore,
  createProject,
  createUser,
  defaultPermissions,
  getProject,
  removeProjectMembers,
  setProjectMembers,
  silentLogger,
} from '@dstack/core';
import type { CoreContext, ProjectRecord, UserRecord } from '@dstack/core';

let ctx: CoreContext;
let owner: UserRecord;
let other: UserRecord;
let project: ProjectRecord;

beforeEach(async () => {
  ctx = {
    store: createMemoryStateStore(),
    logs: createMemoryLogStore(),
    cipher: createCipher(),
    providers: new Map(),
    logger: silentLogger,
    settings: {
      serverDir: '/nonexistent',
      serverVersion: null,
      defaultPermissions: { ...defaultPermissions },
      userProjectQuota: 10,
    },
    now: () => Date.now(),
  };
  owner = await createUser(ctx, { username: 'owner', globalRole: 'user' });
  other = await createUser(ctx, {
    username: 'other', globalRole: 'user', email: 'other@example.com',
  });
  project = await createProject(ctx, owner, { projectName: 'p' });
});

const roles = async () =>
  (await getProject(ctx, project)).members.map((m) => `${m.user.username}:${m.project_role}`);

describe('members service', () => {
  it('accepts an email in place of a username and keeps the given order', async () => {
    await setProjectMembers(ctx, owner, project, [
      { username: 'other@example.com', projectRole: 'manager' },
      { username: 'owner', projectRole: 'admin' },
    ]);

    expect(await roles()).toEqual(['other:manager', 'owner:admin']);
  });

  it('updates the role of an existing member on add', async () => {
    await addProjectMembers(ctx, owner, project, [{ username: 'other', projectRole: 'user' }]);
    await addProjectMembers(ctx, owner, project, [{ username: 'other', projectRole: 'manager' }]);

    expect(await roles()).toEqual(['owner:admin', 'other:manager']);
  });

  it('keeps the last admin from leaving', async () => {
    await expect(
      removeProjectMembers(ctx, owner, project, ['owner']),
    ).rejects.toThrow('Cannot leave project: you are the last admin');

    await addProjectMembers(ctx, owner, project, [{ username: 'other', projectRole: 'admin' }]);
    await removeProjectMembers(ctx, owner, project, ['owner']);
    expect(await roles()).toEqual(['other:admin']);
  });

  it('derives member permissions from default_permissions', async () => {
    await addProjectMembers(ctx, owner, project, [{ username: 'other', projectRole: 'manager' }]);
    ctx.settings.defaultPermissions.allowManagersManageSecrets = true;
    ctx.settings.defaultPermissions.allowNonAdminsManageSshFleets = false;

    const members = (await getProject(ctx, project)).members;
    expect(members.map((m) => m.permissions)).toEqual([
      { can_manage_ssh_fleets: true, can_manage_secrets: true },
      { can_manage_ssh_fleets: false, can_manage_secrets: true },
    ]);
  });
});
