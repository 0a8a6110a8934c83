import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isUuidV4 } from '@dstack/core';
import type { DstackServer } from '../src/index.js';
import { addUser, createTestServer, post } from './helpers.js';

let server: DstackServer;
let alice: string;

beforeEach(async () => {
  server = await createTestServer({ adminToken: 'admin-secret-token' });
  alice = await addUser(server, 'alice');
});

afterEach(async () => {
  await server.close();
});

describe('users API', () => {
  it('creates users with a UUID token and an SSH key, and the token logs in', async () => {
    const created = await post(server, '/api/users/create', server.adminToken, {
      username: 'bob', global_role: 'user', email: 'bob@example.com',
    });

    expect(created.statusCode).toBe(200);
    const user = created.json();
    expect(Object.keys(user).sort()).toEqual([
      'active', 'created_at', 'email', 'global_role', 'id', 'permissions', 'ssh_public_key',
      'username',
    ]);
    expect(isUuidV4(user.id)).toBe(true);
    expect(user).toMatchObject({
      username: 'bob', global_role: 'user', email: 'bob@example.com', active: true,
      permissions: { can_create_projects: true },
    });
    expect(user.ssh_public_key).toMatch(/^ssh-rsa AAAA\S+ bob\n$/);
    expect(user.created_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z$/);

    const bob = await post(server, '/api/users/get_user', server.adminToken, { username: 'bob' });
    const token = bob.json().creds.token;
    expect(isUuidV4(token)).toBe(true);
    expect(bob.json().ssh_private_key).toContain('BEGIN RSA PRIVATE KEY');

    const me = await post(server, '/api/users/get_my_user', token);
    expect(me.statusCode).toBe(200);
    expect(me.json()).toMatchObject({ username: 'bob', creds: { token } });
  });

  it('keeps tokens encrypted at rest and looks them up by sha256', async () => {
    const row = await server.ctx.store.findOne('users', { where: { name: 'alice' } });

    expect(row?.token).not.toBe(alice);
    expect(row?.token.startsWith('enc:')).toBe(true);
    expect(row?.tokenHash).toMatch(/^[0-9a-f]{64}$/);
    expect(row?.sshPrivateKey?.startsWith('enc:')).toBe(true);
  });

  it('refuses duplicate and badly named users', async () => {
    const duplicate = await post(server, '/api/users/create', server.adminToken, {
      username: 'ALICE', global_role: 'user',
    });
    expect(duplicate.statusCode).toBe(400);
    expect(duplicate.json()).toEqual({
      detail: [{ msg: 'Resource exists', code: 'resource_exists' }],
    });

    const bad = await post(server, '/api/users/create', server.adminToken, {
      username: 'no spaces', global_role: 'user',
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toEqual({
      detail: [{ msg: "Username should match regex '^[a-zA-Z0-9-_]{1,60}$'", code: 'error' }],
    });
  });

  it('lets only a global admin create, update and delete users', async () => {
    for (const path of ['create', 'update', 'delete']) {
      const anonymous = await post(server, `/api/users/${path}`, null, {});
      expect(anonymous.statusCode, path).toBe(401);

      const denied = await post(server, `/api/users/${path}`, alice, {});
      expect(denied.statusCode, path).toBe(403);
      expect(denied.json()).toEqual({ detail: { msg: 'Access denied', code: null } });
    }
  });

  it('lists everyone for a global admin and only oneself otherwise', async () => {
    await addUser(server, 'carol');

    const all = await post(server, '/api/users/list', server.adminToken);
    expect(all.json().map((user: { username: string }) => user.username).sort())
      .toEqual(['admin', 'alice', 'carol']);

    const own = await post(server, '/api/users/list', alice, {});
    expect(own.json().map((user: { username: string }) => user.username)).toEqual(['alice']);

    const counted = await post(server, '/api/users/list', server.adminToken, {
      return_total_count: true, limit: 1, ascending: true,
    });
    expect(counted.json().total_count).toBe(3);
    expect(counted.json().users.map((user: { username: string }) => user.username))
      .toEqual(['admin']);

    const tooMany = await post(server, '/api/users/list', server.adminToken, { limit: 2001 });
    expect(tooMany.statusCode).toBe(422);
  });

  it('pages users by created_at and id', async () => {
    await addUser(server, 'carol');
    await addUser(server, 'dave');

    const first = await post(server, '/api/users/list', server.adminToken, { limit: 2 });
    const names = first.json().map((user: { username: string }) => user.username);
    expect(names).toHaveLength(2);

    const last = first.json()[1];
    const next = await post(server, '/api/users/list', server.adminToken, {
      limit: 10, prev_created_at: last.created_at, prev_id: last.id,
    });
    const rest = next.json().map((user: { username: string }) => user.username);
    expect([...names, ...rest].sort()).toEqual(['admin', 'alice', 'carol', 'dave']);
    expect(rest.some((name: string) => names.includes(name))).toBe(false);
  });

  it('hides other users from get_user with 400 and refreshes only own creds', async () => {
    const other = await post(server, '/api/users/get_user', alice, { username: 'admin' });
    expect(other.statusCode).toBe(400);
    expect(other.json()).toEqual({
      detail: [{ msg: 'Resource not found', code: 'resource_not_exists' }],
    });

    const foreign = await post(server, '/api/users/refresh_token', alice, { username: 'admin' });
    expect(foreign.statusCode).toBe(403);
    expect(foreign.json()).toEqual({ detail: { msg: 'Access denied', code: null } });

    const refreshed = await post(server, '/api/users/refresh_token', alice, {
      username: 'alice',
    });
    const newToken = refreshed.json().creds.token;
    expect(newToken).not.toBe(alice);

    const old = await post(server, '/api/users/get_my_user', alice);
    expect(old.statusCode).toBe(403);
    expect(old.json()).toEqual({ detail: { msg: 'Invalid token', code: null } });
    expect((await post(server, '/api/users/get_my_user', newToken)).statusCode).toBe(200);

    const before = (await post(server, '/api/users/get_my_user', newToken)).json();
    const key = await post(server, '/api/users/refresh_ssh_key', newToken, { username: 'alice' });
    expect(key.json().ssh_public_key).not.toBe(before.ssh_public_key);

    const byAdmin = await post(server, '/api/users/refresh_ssh_key', server.adminToken, {
      username: 'alice',
    });
    expect(byAdmin.statusCode).toBe(200);

    const unknown = await post(server, '/api/users/refresh_token', server.adminToken, {
      username: 'nobody',
    });
    expect(unknown.statusCode).toBe(400);
  });

  it('updates as a full replace and deactivation locks the user out', async () => {
    await post(server, '/api/users/update', server.adminToken, {
      username: 'alice', global_role: 'user', email: 'a@example.com',
    });
    const replaced = await post(server, '/api/users/update', server.adminToken, {
      username: 'alice', global_role: 'admin', active: false,
    });

    expect(replaced.json()).toMatchObject({ global_role: 'admin', email: null, active: false });
    expect((await post(server, '/api/users/get_my_user', alice)).statusCode).toBe(403);

    const missing = await post(server, '/api/users/update', server.adminToken, {
      username: 'nobody', global_role: 'user',
    });
    expect(missing.json()).toEqual({
      detail: [{ msg: 'Resource not found', code: 'resource_not_exists' }],
    });
  });

  it('soft-deletes users all or nothing, never admin, and frees the name', async () => {
    const withAdmin = await post(server, '/api/users/delete', server.adminToken, {
      users: ['alice', 'admin'],
    });
    expect(withAdmin.json()).toEqual({
      detail: [{ msg: "User 'admin' cannot be deleted", code: 'error' }],
    });

    const partial = await post(server, '/api/users/delete', server.adminToken, {
      users: ['alice', 'ghost'],
    });
    expect(partial.json()).toEqual({
      detail: [{ msg: 'Failed to delete non-existent users', code: 'error' }],
    });
    expect((await post(server, '/api/users/get_my_user', alice)).statusCode).toBe(200);

    const deleted = await post(server, '/api/users/delete', server.adminToken, {
      users: ['alice'],
    });
    expect(deleted.statusCode).toBe(200);
    expect(deleted.body).toBe('null');
    expect((await post(server, '/api/users/get_my_user', alice)).statusCode).toBe(403);

    const rows = await server.ctx.store.find('users', { where: { originalName: 'alice' } });
    expect(rows).toHaveLength(1);
    expect(rows[0]?.name).toMatch(/^_deleted_\d+_[0-9a-f]{16}$/);
    expect(rows[0]).toMatchObject({ deleted: true, active: false });
    expect(await server.ctx.store.count('members', { userId: rows[0]?.id })).toBe(0);

    const again = await post(server, '/api/users/create', server.adminToken, {
      username: 'alice', global_role: 'user',
    });
    expect(again.statusCode).toBe(200);
  });

  it('derives can_create_projects from default_permissions', async () => {
    const strict = await createTestServer({
      permissions: { allowNonAdminsCreateProjects: false },
    });

    try {
      const token = await addUser(strict, 'eve');
      const eve = await post(strict, '/api/users/get_my_user', token);
      expect(eve.json().permissions).toEqual({ can_create_projects: false });

      const admin = await post(strict, '/api/users/get_my_user', strict.adminToken);
      expect(admin.json().permissions).toEqual({ can_create_projects: true });
    } finally {
      await strict.close();
    }
  });

  it('needs a token for every users endpoint', async () => {
    for (const path of ['list', 'get_my_user', 'get_user', 'refresh_token', 'refresh_ssh_key']) {
      const response = await post(server, `/api/users/${path}`, null, { username: 'alice' });
      expect(response.statusCode, path).toBe(401);
      expect(response.json()).toEqual({ detail: 'Not authenticated' });
    }
  });
});
