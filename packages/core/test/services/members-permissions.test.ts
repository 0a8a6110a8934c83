import { describe, expect, it } from 'vitest';
import {
  canCreateProjects,
  canManageSecrets,
  canManageSshFleets,
  defaultPermissions,
  passesProjectGuard,
} from '@dstack/core';
import type { ProjectGuard, ProjectRole } from '@dstack/core';

const ga = { globalRole: 'admin' as const };
const plain = { globalRole: 'user' as const };

type Who = 'outsider' | ProjectRole | 'ga';

function access(who: Who, isPublic: boolean) {
  return {
    user: who === 'ga' ? ga : plain,
    project: { isPublic },
    role: who === 'outsider' || who === 'ga' ? null : who,
  };
}

describe('route guards (§1.4)', () => {
  const expected: Record<ProjectGuard, Who[]> = {
    exists: ['outsider', 'user', 'manager', 'admin', 'ga'],
    member: ['user', 'manager', 'admin', 'ga'],
    memberOrPublic: ['user', 'manager', 'admin', 'ga'],
    manager: ['manager', 'admin', 'ga'],
    managerOrPublic: ['manager', 'admin', 'ga'],
    managerOrSelfLeave: ['user', 'manager', 'admin', 'ga'],
    admin: ['admin', 'ga'],
  };

  for (const [guard, allowed] of Object.entries(expected) as [ProjectGuard, Who[]][]) {
    it(`${guard} on a private project lets through ${allowed.join(', ')}`, () => {
      const passing = (['outsider', 'user', 'manager', 'admin', 'ga'] as Who[]).filter((who) =>
        passesProjectGuard(guard, access(who, false)),
      );
      expect(passing).toEqual(allowed);
    });
  }

  it('lets an outsider through the public-project guards only', () => {
    expect(passesProjectGuard('memberOrPublic', access('outsider', true))).toBe(true);
    expect(passesProjectGuard('managerOrPublic', access('outsider', true))).toBe(true);
    expect(passesProjectGuard('member', access('outsider', true))).toBe(false);
    expect(passesProjectGuard('manager', access('user', true))).toBe(false);
  });
});

describe('derived permissions (§1.3)', () => {
  const strict = {
    allowNonAdminsCreateProjects: false,
    allowNonAdminsManageSshFleets: false,
    allowManagersManageSecrets: false,
  };

  it('can_create_projects is false only for non-admins under the strict flag', () => {
    expect(canCreateProjects(plain, defaultPermissions)).toBe(true);
    expect(canCreateProjects(plain, strict)).toBe(false);
    expect(canCreateProjects(ga, strict)).toBe(true);
  });

  it('can_manage_ssh_fleets needs a global or project admin under the strict flag', () => {
    expect(canManageSshFleets(plain, 'user', defaultPermissions)).toBe(true);
    expect(canManageSshFleets(plain, 'manager', strict)).toBe(false);
    expect(canManageSshFleets(plain, 'admin', strict)).toBe(true);
    expect(canManageSshFleets(ga, null, strict)).toBe(true);
  });

  it('can_manage_secrets: admins always, managers only when allowed, users never', () => {
    const allowManagers = { ...defaultPermissions, allowManagersManageSecrets: true };

    expect(canManageSecrets(plain, 'admin', defaultPermissions)).toBe(true);
    expect(canManageSecrets(ga, null, defaultPermissions)).toBe(true);
    expect(canManageSecrets(plain, 'manager', defaultPermissions)).toBe(false);
    expect(canManageSecrets(plain, 'manager', allowManagers)).toBe(true);
    expect(canManageSecrets(plain, 'user', allowManagers)).toBe(false);
  });
});
