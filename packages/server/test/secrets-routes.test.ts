import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { createCipher, sha256Hex } from '@dstack/core';
import type { CoreContext, MemberRecord, ProjectRecord, UserRecord } from '@dstack/core';
import { createHttpApp } from '../src/http/index.js';
import { registerSecretsRoutes } from '../src/routes/secrets.js';
import { createTestContext } from './helpers.js';

const aesKey = {
  type: 'aes',
  name: 'key1',
  secret: Buffer.alloc(32, 9).toString('base64'),
} as const;

let ctx: CoreContext;
let app: FastifyInstance;
let project: ProjectRecord;

async function addUser(name: string, globalRole: UserRecord['globalRole']): Promise<void> {
  const token = `${name}-token`;
  await ctx.store.insert('users', {
    id: crypto.randomUUID(), name, createdAt: ctx.now(), token: ctx.cipher.encrypt(token),
    tokenHash: sha256Hex(token), globalRole, email: null, active: true, deleted: false,
    originalName: null, sshPublicKey: null, sshPrivateKey: null,
  });
}

async function addMember(name: string, projectRole: MemberRecord['projectRole']): Promise<void> {
  await addUser(name, 'user');
  const user = await ctx.store.findOne('users', { where: { name } });
  await ctx.store.insert('members', {
    id: crypto.randomUUID(), projectId: project.id, userId: user!.id, projectRole,
    memberNum: 0,
  });
}

function call(user: string, path: string, payload?: unknown) {
  return app.inject({
    method: 'POST',
    url: `/api/project/main/secrets/${path}`,
    headers: { authorization: `Bearer ${user}-token`, 'content-type': 'application/json' },
    ...(payload === undefined ? {} : { payload: JSON.stringify(payload) }),
  });
}

beforeEach(async () => {
  ctx = createTestContext({ cipher: createCipher([aesKey]) });
  await addUser('admin', 'admin');
  const admin = await ctx.store.findOne('users', { where: { name: 'admin' } });
  project = {
    id: crypto.randomUUID(), name: 'main', createdAt: ctx.now(), ownerId: admin!.id,
    isPublic: false, templatesRepo: null, deleted: false, originalName: null,
    sshPublicKey: null, sshPrivateKey: null,
  };
  await ctx.store.insert('projects', project);
  await addMember('padmin', 'admin');
  await addMember('manager', 'manager');
  await addMember('member', 'user');
  await addUser('outsider', 'user');
  app = createHttpApp({ ctx });
  registerSecretsRoutes(app, { ctx });
});

afterEach(async () => {
  await app.close();
});

describe('secrets routes', () => {
  it('create_or_update, list, get and delete on the wire', async () => {
    const created = await call('admin', 'create_or_update', { name: 'api_key', value: 'sk-1' });

    expect(created.statusCode).toBe(200);
    const secret = created.json();
    expect(secret).toEqual({ id: expect.any(String), name: 'api_key', value: 'sk-1' });

    await call('padmin', 'create_or_update', { name: 'second', value: 'sk-2' });
    const listed = await call('padmin', 'list', {});
    expect(listed.json()).toEqual([
      { id: expect.any(String), name: 'second', value: null },
      { id: secret.id, name: 'api_key', value: null },
    ]);

    expect((await call('admin', 'get', { name: 'api_key' })).json()).toEqual(secret);

    const deleted = await call('admin', 'delete', { secrets_names: ['api_key', 'second'] });
    expect(deleted.statusCode).toBe(200);
    expect(deleted.body).toBe('null');
    expect((await call('admin', 'list')).json()).toEqual([]);
  });

  it('answers missing secrets with 400 resource_not_exists', async () => {
    const get = await call('admin', 'get', { name: 'nope' });

    expect(get.statusCode).toBe(400);
    expect(get.json()).toEqual({
      detail: [{ msg: 'Resource not found', code: 'resource_not_exists' }],
    });

    await call('admin', 'create_or_update', { name: 'a', value: '1' });
    const deleted = await call('admin', 'delete', { secrets_names: ['a', 'b', 'c'] });
    expect(deleted.statusCode).toBe(400);
    expect(deleted.json()).toEqual({
      detail: [{ msg: 'Secrets not found: b, c', code: 'resource_not_exists' }],
    });
    expect((await call('admin', 'list')).json()).toHaveLength(1);
  });

  it('answers a bad name or a long value with 400 and a bad body with 422', async () => {
    const name = await call('admin', 'create_or_update', { name: 'a b', value: '1' });

    expect(name.statusCode).toBe(400);
    expect(name.json().detail[0]).toEqual({
      msg: "Secret name should match regex '^[A-Za-z0-9-_]{1,200}$",
      code: 'error',
    });

    const long = await call('admin', 'create_or_update', { name: 'a', value: 'x'.repeat(5001) });
    expect(long.statusCode).toBe(400);
    expect(long.json().detail[0].msg).toBe('Secret value length must not exceed 5000');

    const extra = await call('admin', 'create_or_update', { name: 'a', value: '1', other: 1 });
    expect(extra.statusCode).toBe(422);
    expect(extra.json().detail[0].type).toBe('extra_forbidden');
    expect((await call('admin', 'list')).json()).toEqual([]);
  });

  it('guards: users get the route 403, managers the service 403 unless allowed', async () => {
    const member = await call('member', 'list');

    expect(member.statusCode).toBe(403);
    expect(member.json()).toEqual({ detail: { msg: 'Access denied', code: null } });
    expect((await call('outsider', 'list')).statusCode).toBe(403);

    const manager = await call('manager', 'list');
    expect(manager.statusCode).toBe(403);
    expect(manager.json()).toEqual({ msg: 'Access denied', code: null });

    ctx.settings.defaultPermissions.allowManagersManageSecrets = true;
    const allowed = await call('manager', 'create_or_update', { name: 'm', value: 'v' });
    expect(allowed.statusCode).toBe(200);

    const unauthenticated = await app.inject({
      method: 'POST', url: '/api/project/main/secrets/list',
    });
    expect(unauthenticated.statusCode).toBe(401);

    const unknownProject = await app.inject({
      method: 'POST', url: '/api/project/nope/secrets/list',
      headers: { authorization: 'Bearer admin-token' },
    });
    expect(unknownProject.statusCode).toBe(404);
  });

  it('keeps the value encrypted in the store', async () => {
    await call('admin', 'create_or_update', { name: 'api_key', value: 'sk-stored' });
    const [row] = await ctx.store.find('secrets');

    expect(row.value).toMatch(/^enc:aes:key1:/);
    expect(row.value).not.toContain('sk-stored');
  });
});
