import { describe, expect, it } from 'vitest';
import {
  createCipher,
  createMemoryLogStore,
  createMemoryStateStore,
  createProject,
  createUser,
  defaultPermissions,
  deleteProjects,
  findProjectByName,
  getOrCreateAdminUser,
  getOrCreateProject,
  getProject,
  silentLogger,
} from '@dstack/core';
import type { CoreContext } from '@dstack/core';

function context(): CoreContext {
  return {
    store: createMemoryStateStore(),
    logs: createMemoryLogStore(),
    cipher: createCipher(),
    providers: new Map(),
    logger: silentLogger,
    settings: {
      serverDir: '/nonexistent',
      serverVersion: null,
      defaultPermissions: { ...defaultPermissions },
      userProjectQuota: 2,
    },
    now: () => Date.now(),
  };
}

describe('projects service', () => {
  it('creates a missing project once and finds it by any letter case', async () => {
    const ctx = context();
    const { user: admin } = await getOrCreateAdminUser(ctx);
    const first = await getOrCreateProject(ctx, admin, 'main');
    const second = await getOrCreateProject(ctx, admin, 'main');

    expect(first.created).toBe(true);
    expect(second.created).toBe(false);
    expect(second.project.id).toBe(first.project.id);
    expect((await findProjectByName(ctx.store, 'MAIN'))?.id).toBe(first.project.id);

    const wire = await getProject(ctx, first.project);
    expect(wire.members).toMatchObject([{ user: { username: 'admin' }, project_role: 'admin' }]);
  });

  it('counts only non-deleted owned projects against the quota', async () => {
    const ctx = context();
    const user = await createUser(ctx, { username: 'owner', globalRole: 'user' });
    await createProject(ctx, user, { projectName: 'p1' });
    await createProject(ctx, user, { projectName: 'p2' });

    await expect(createProject(ctx, user, { projectName: 'p3' })).rejects.toThrow(
      'User project quota exceeded',
    );

    await deleteProjects(ctx, user, ['p1']);
    const third = await createProject(ctx, user, { projectName: 'p3' });
    expect(third.name).toBe('p3');
  });

  it('refuses to delete a project with active runs or fleets', async () => {
    const ctx = context();
    const { user: admin } = await getOrCreateAdminUser(ctx);
    const project = await createProject(ctx, admin, { projectName: 'busy' });
    await ctx.store.insert('fleets', {
      id: 'f1', projectId: project.id, name: 'fleet', createdAt: 0, lastProcessedAt: 0,
      deleted: false, deletedAt: null, status: 'active', statusMessage: null, spec: {},
      consolidationAttempt: 0, lockToken: null, lockOwner: null, lockExpiresAt: null,
    });

    await expect(deleteProjects(ctx, admin, ['busy'])).rejects.toThrow(
      'Failed to delete project with active runs/fleets/volumes: [busy]',
    );
    expect((await findProjectByName(ctx.store, 'busy'))?.id).toBe(project.id);
  });
});
