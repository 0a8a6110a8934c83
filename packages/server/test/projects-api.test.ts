import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DstackServer } from '../src/index.js';
import { addUser, createTestServer, post } from './helpers.js';

interface Tokens {
  ga: string;
  pa: string;
  pm: string;
  pu: string;
  outsider: string;
}

let server: DstackServer;
let t: Tokens;

const names = (response: { json(): unknown }): string[] =>
  (response.json() as { project_name: string }[]).map((project) => project.project_name);

async function setMembers(project: string, members: [string, string][]): Promise<void> {
  const response = await post(server, `/api/projects/${project}/set_members`, server.adminToken, {
    members: members.map(([username, role]) => ({ username, project_role: role })),
  });
  expect(response.statusCode, response.body).toBe(200);
}

beforeEach(async () => {
  server = await createTestServer();
  t = {
    ga: server.adminToken,
    pa: await addUser(server, 'pa'),
    pm: await addUser(server, 'pm'),
    pu: await addUser(server, 'pu'),
    outsider: await addUser(server, 'outsider'),
  };
  const created = await post(server, '/api/projects/create', t.ga, { project_name: 'team' });
  expect(created.statusCode).toBe(200);
  await setMembers('team', [
    ['admin', 'admin'], ['pa', 'admin'], ['pm', 'manager'], ['pu', 'user'],
  ]);
});

afterEach(async () => {
  await server.close();
});

describe('projects API', () => {
  it('has project main with admin as its admin member after start', async () => {
    const main = await post(server, '/api/projects/main/get', t.ga);

    expect(main.statusCode).toBe(200);
    expect(main.json()).toMatchObject({
      project_name: 'main',
      owner: { username: 'admin', global_role: 'admin' },
      is_public: false,
      templates_repo: null,
      members: [{
        user: { username: 'admin' },
        project_role: 'admin',
        permissions: { can_manage_ssh_fleets: true, can_manage_secrets: true },
      }],
    });
    expect(Object.keys(main.json()).sort()).toEqual([
      'backends', 'created_at', 'is_public', 'members', 'owner', 'project_id', 'project_name',
      'templates_repo',
    ]);
  });

  it('looks projects up case-insensitively and answers 404 for unknown ones', async () => {
    expect((await post(server, '/api/projects/TEAM/get', t.pu)).statusCode).toBe(200);

    const missing = await post(server, '/api/projects/nope/get', t.ga);
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toEqual({ detail: { msg: 'Not found', code: null } });
  });

  it('follows the permission matrix for get, update and set_members', async () => {
    const matrix: [string, keyof Tokens | null, number][] = [
      ['get', null, 401], ['get', 'outsider', 403], ['get', 'pu', 200], ['get', 'pm', 200],
      ['get', 'pa', 200], ['get', 'ga', 200],
      ['update', 'outsider', 403], ['update', 'pu', 403], ['update', 'pm', 403],
      ['update', 'pa', 200], ['update', 'ga', 200],
      ['set_members', 'outsider', 403], ['set_members', 'pu', 403],
    ];

    for (const [path, who, status] of matrix) {
      const body = path === 'update' ? { is_public: false } : {};
      const response = await post(server, `/api/projects/team/${path}`, who && t[who], body);
      expect(response.statusCode, `${path} as ${who}`).toBe(status);

      if (status === 403) {
        expect(response.json()).toEqual({ detail: { msg: 'Access denied', code: null } });
      }
    }
  });

  it('lets a public project be read and joined as user only', async () => {
    await post(server, '/api/projects/team/update', t.pa, { is_public: true });

    expect((await post(server, '/api/projects/team/get', t.outsider)).statusCode).toBe(200);

    const asAdmin = await post(server, '/api/projects/team/add_members', t.outsider, {
      members: [{ username: 'outsider', project_role: 'admin' }],
    });
    expect(asAdmin.statusCode).toBe(403);
    expect(asAdmin.json()).toEqual({
      msg: 'Access denied: can only join public projects as user role', code: null,
    });

    const joined = await post(server, '/api/projects/team/add_members', t.outsider, {
      members: [{ username: 'outsider', project_role: 'user' }],
    });
    expect(joined.statusCode).toBe(200);
    expect(joined.json().members.at(-1)).toMatchObject({
      user: { username: 'outsider' }, project_role: 'user',
    });
  });

  it('keeps managers from changing or adding admins', async () => {
    const change = await post(server, '/api/projects/team/set_members', t.pm, {
      members: [
        { username: 'admin', project_role: 'admin' },
        { username: 'pm', project_role: 'admin' },
      ],
    });
    expect(change.statusCode).toBe(403);
    expect(change.json()).toEqual({ msg: 'Access denied: changing project admins', code: null });

    const keep = await post(server, '/api/projects/team/set_members', t.pm, {
      members: [
        { username: 'admin', project_role: 'admin' },
        { username: 'pa', project_role: 'admin' },
        { username: 'pm', project_role: 'manager' },
        { username: 'ghost', project_role: 'user' },
      ],
    });
    expect(keep.statusCode).toBe(200);
    expect(keep.json().members.map((m: { user: { username: string } }) => m.user.username))
      .toEqual(['admin', 'pa', 'pm']);

    const grant = await post(server, '/api/projects/team/add_members', t.pm, {
      members: [{ username: 'outsider', project_role: 'admin' }],
    });
    expect(grant.json()).toEqual({
      msg: 'Access denied: only global admins can add project admins', code: null,
    });

    const dup = await post(server, '/api/projects/team/add_members', t.pm, {
      members: [
        { username: 'outsider', project_role: 'user' },
        { username: 'outsider', project_role: 'user' },
      ],
    });
    expect(dup.json()).toEqual({
      detail: [{ msg: 'Cannot add same user multiple times', code: 'error' }],
    });

    const unknown = await post(server, '/api/projects/team/add_members', t.pm, {
      members: [{ username: 'ghost', project_role: 'user' }],
    });
    expect(unknown.json()).toEqual({ detail: [{ msg: 'User not found: ghost', code: 'error' }] });
  });

  it('removes members: self-leave, managers, and the admins rule', async () => {
    const leave = await post(server, '/api/projects/team/remove_members', t.pu, {
      usernames: ['pu'],
    });
    expect(leave.statusCode).toBe(200);
    expect((await post(server, '/api/projects/team/get', t.pu)).statusCode).toBe(403);

    const outsider = await post(server, '/api/projects/team/remove_members', t.outsider, {
      usernames: ['pm'],
    });
    expect(outsider.statusCode).toBe(403);
    expect(outsider.json()).toEqual({ detail: { msg: 'Access denied', code: null } });

    const paRemovesAdmin = await post(server, '/api/projects/team/remove_members', t.pa, {
      usernames: ['admin'],
    });
    expect(paRemovesAdmin.statusCode).toBe(403);
    expect(paRemovesAdmin.json().msg).toContain('only global admins can remove project admins');

    const all = await post(server, '/api/projects/team/remove_members', t.ga, {
      usernames: ['admin', 'pa'],
    });
    expect(all.json()).toEqual({
      detail: [{ msg: 'Cannot remove all project admins', code: 'error' }],
    });

    const notMember = await post(server, '/api/projects/team/remove_members', t.ga, {
      usernames: ['outsider'],
    });
    expect(notMember.json()).toEqual({
      detail: [{ msg: 'User is not a member of this project: outsider', code: 'error' }],
    });
  });

  it('lists member projects, public ones when asked, and all for a global admin', async () => {
    await post(server, '/api/projects/create', t.outsider, {
      project_name: 'open', is_public: true,
    });

    expect(names(await post(server, '/api/projects/list', t.ga)).sort())
      .toEqual(['main', 'open', 'team']);
    expect(names(await post(server, '/api/projects/list', t.pu)).sort()).toEqual(['open', 'team']);
    expect(names(await post(server, '/api/projects/list', t.pu, { include_not_joined: false })))
      .toEqual(['team']);

    const listed = (await post(server, '/api/projects/list', t.pu)).json();
    expect(listed[0].members).toEqual([]);
    expect(listed[0].backends).toEqual([]);

    const counted = await post(server, '/api/projects/list', t.ga, {
      return_total_count: true, limit: 1,
    });
    expect(counted.json().total_count).toBe(3);
    expect(counted.json().projects).toHaveLength(1);

    expect(names(await post(server, '/api/projects/list_only_no_fleets', t.pu))).toEqual(['team']);
  });

  it('creates projects with the creator as admin, within quota and permissions', async () => {
    const created = await post(server, '/api/projects/create', t.outsider, {
      project_name: 'mine',
    });
    expect(created.statusCode).toBe(200);
    expect(created.json().members).toMatchObject([
      { user: { username: 'outsider' }, project_role: 'admin' },
    ]);

    const duplicate = await post(server, '/api/projects/create', t.pu, { project_name: 'MINE' });
    expect(duplicate.json()).toEqual({
      detail: [{ msg: 'Resource exists', code: 'resource_exists' }],
    });

    const badName = await post(server, '/api/projects/create', t.pu, { project_name: 'a b' });
    expect(badName.statusCode).toBe(400);

    const row = await server.ctx.store.findOne('projects', { where: { name: 'mine' } });
    expect(row?.sshPublicKey).toMatch(/^ssh-rsa \S+ mine@dstack\n$/);
    expect(row?.sshPrivateKey?.startsWith('enc:')).toBe(true);
  });

  it('enforces DSTACK_USER_PROJECT_DEFAULT_QUOTA for non-admins only', async () => {
    const small = await createTestServer({ settings: { userProjectQuota: 1 } });

    try {
      const token = await addUser(small, 'quota');
      expect((await post(small, '/api/projects/create', token, { project_name: 'p1' })).statusCode)
        .toBe(200);

      const over = await post(small, '/api/projects/create', token, { project_name: 'p2' });
      expect(over.statusCode).toBe(400);
      expect(over.json()).toEqual({
        detail: [{ code: 'error', msg: 'User project quota exceeded' }],
      });

      for (const name of ['g1', 'g2']) {
        const byAdmin = await post(small, '/api/projects/create', small.adminToken, {
          project_name: name,
        });
        expect(byAdmin.statusCode).toBe(200);
      }
    } finally {
      await small.close();
    }
  });

  it('refuses project creation with 403 when non-admins may not create projects', async () => {
    const strict = await createTestServer({
      permissions: { allowNonAdminsCreateProjects: false },
    });

    try {
      const token = await addUser(strict, 'eve');
      const denied = await post(strict, '/api/projects/create', token, { project_name: 'x' });
      expect(denied.statusCode).toBe(403);
      expect(denied.json()).toEqual({ msg: 'User cannot create projects', code: null });
    } finally {
      await strict.close();
    }
  });

  it('soft-deletes projects for their admins only and frees the name', async () => {
    const byManager = await post(server, '/api/projects/delete', t.pm, {
      projects_names: ['team'],
    });
    expect(byManager.statusCode).toBe(403);
    expect(byManager.json()).toEqual({ msg: 'Access denied', code: null });

    const unknownForUser = await post(server, '/api/projects/delete', t.pa, {
      projects_names: ['ghost'],
    });
    expect(unknownForUser.statusCode).toBe(403);

    const unknownForAdmin = await post(server, '/api/projects/delete', t.ga, {
      projects_names: ['ghost'],
    });
    expect(unknownForAdmin.json()).toEqual({
      detail: [{ msg: 'Failed to delete non-existent projects', code: 'error' }],
    });

    const deleted = await post(server, '/api/projects/delete', t.pa, { projects_names: ['team'] });
    expect(deleted.statusCode).toBe(200);
    expect(deleted.body).toBe('null');
    expect((await post(server, '/api/projects/team/get', t.ga)).statusCode).toBe(404);

    const row = await server.ctx.store.findOne('projects', { where: { originalName: 'team' } });
    expect(row?.name).toMatch(/^_deleted_\d+_[0-9a-f]{16}$/);

    const again = await post(server, '/api/projects/create', t.pu, { project_name: 'team' });
    expect(again.statusCode).toBe(200);
  });

  it('updates visibility and the templates repo', async () => {
    const set = await post(server, '/api/projects/team/update', t.pa, {
      is_public: true, templates_repo: 'https://github.com/example/templates',
    });
    expect(set.json()).toMatchObject({
      is_public: true, templates_repo: 'https://github.com/example/templates',
    });

    const blank = await post(server, '/api/projects/team/update', t.pa, { templates_repo: ' ' });
    expect(blank.json()).toMatchObject({
      is_public: true, templates_repo: 'https://github.com/example/templates',
    });

    const reset = await post(server, '/api/projects/team/update', t.pa, {
      reset_templates_repo: true,
    });
    expect(reset.json().templates_repo).toBeNull();
  });

  it('lets an owner who is still a member delete the project, whatever its role', async () => {
    const created = await post(server, '/api/projects/create', t.pu, { project_name: 'owned' });
    expect(created.statusCode).toBe(200);
    await setMembers('owned', [['admin', 'admin'], ['pu', 'user']]);

    const deleted = await post(server, '/api/projects/delete', t.pu, {
      projects_names: ['owned'],
    });
    expect(deleted.statusCode).toBe(200);
  });

  it('refuses add_members to a project user, and to anyone anonymous', async () => {
    const body = { members: [{ username: 'outsider', project_role: 'user' }] };

    const anonymous = await post(server, '/api/projects/team/add_members', null, body);
    expect(anonymous.statusCode).toBe(401);

    const private_ = await post(server, '/api/projects/team/add_members', t.pu, body);
    expect(private_.statusCode).toBe(403);
    expect(private_.json()).toEqual({ detail: { msg: 'Access denied', code: null } });

    await post(server, '/api/projects/team/update', t.pa, { is_public: true });
    const public_ = await post(server, '/api/projects/team/add_members', t.pu, body);
    expect(public_.statusCode).toBe(403);
    expect(public_.json()).toEqual({
      msg: 'Access denied: insufficient permissions to add members', code: null,
    });

    const byManager = await post(server, '/api/projects/team/add_members', t.pm, body);
    expect(byManager.statusCode).toBe(200);
  });

  it('needs a token for every projects endpoint', async () => {
    for (const path of ['list', 'list_only_no_fleets', 'create', 'delete', 'team/get',
      'team/set_members', 'team/remove_members', 'team/update']) {
      const response = await post(server, `/api/projects/${path}`, null, {});
      expect(response.statusCode, path).toBe(401);
      expect(response.json()).toEqual({ detail: 'Not authenticated' });
    }
  });
});
