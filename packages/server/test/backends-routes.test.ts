import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import {
  BackendInvalidCredentialsError,
  createCipher,
  createLocalBackendProvider,
  listProjectBackendsForWire,
  sha256Hex,
} from '@dstack/core';
import type { BackendProvider, CoreContext, ProjectRecord, UserRecord } from '@dstack/core';
import { createHttpApp } from '../src/http/index.js';
import { registerBackendsRoutes } from '../src/routes/backends.js';
import { createTestContext } from './helpers.js';

/** A plug-in with an API key that its "cloud" accepts only when it is `good-key`. */
const runpod: BackendProvider = {
  type: 'runpod',
  capabilities: { images: true, multinode: false },
  configSchema: {
    type: 'object',
    additionalProperties: false,
    required: ['type', 'creds'],
    properties: {
      type: { const: 'runpod' },
      regions: { type: ['array', 'null'], items: { type: 'string' } },
      creds: {
        type: 'object',
        additionalProperties: false,
        required: ['type', 'api_key'],
        properties: { type: { const: 'api_key' }, api_key: { type: 'string' } },
      },
    },
  },
  async checkConfig(settings) {
    if (settings.creds?.api_key !== 'good-key') {
      throw new BackendInvalidCredentialsError('Invalid credentials', [['creds', 'api_key']]);
    }
  },
  getOffers: async () => [],
  createInstance: async () => {
    throw new Error('not used');
  },
  terminateInstance: async () => undefined,
  agent: () => {
    throw new Error('not used');
  },
};

const good = {
  type: 'runpod',
  regions: ['eu-1'],
  creds: { type: 'api_key', api_key: 'good-key' },
};

let ctx: CoreContext;
let app: FastifyInstance;
let project: ProjectRecord;
let serverDir: string;

async function addUser(name: string, globalRole: UserRecord['globalRole']): Promise<UserRecord> {
  const token = `${name}-token`;
  const user: UserRecord = {
    id: crypto.randomUUID(), name, createdAt: ctx.now(), token: ctx.cipher.encrypt(token),
    tokenHash: sha256Hex(token), globalRole, email: null, active: true, deleted: false,
    originalName: null, sshPublicKey: null, sshPrivateKey: null,
  };
  await ctx.store.insert('users', user);

  return user;
}

function call(user: string, path: string, payload?: unknown) {
  return app.inject({
    method: 'POST',
    url: `/api/project/main/backends/${path}`,
    headers: { authorization: `Bearer ${user}-token`, 'content-type': 'application/json' },
    ...(payload === undefined ? {} : { payload: JSON.stringify(payload) }),
  });
}

beforeEach(async () => {
  serverDir = mkdtempSync(join(tmpdir(), 'backends-routes-'));
  const providers = new Map<string, BackendProvider>([
    ['runpod', runpod],
    ['local', createLocalBackendProvider({ serverDir })],
  ]);
  const secret = Buffer.alloc(32, 5).toString('base64');
  const cipher = createCipher([{ type: 'aes', name: 'k1', secret }]);
  ctx = createTestContext({ cipher, providers });
  const admin = await addUser('admin', 'admin');
  project = {
    id: crypto.randomUUID(), name: 'main', createdAt: ctx.now(), ownerId: admin.id,
    isPublic: false, templatesRepo: null, deleted: false, originalName: null,
    sshPublicKey: null, sshPrivateKey: null,
  };
  await ctx.store.insert('projects', project);

  for (const [name, projectRole] of [['padmin', 'admin'], ['manager', 'manager']] as const) {
    const user = await addUser(name, 'user');
    await ctx.store.insert('members', {
      id: crypto.randomUUID(), projectId: project.id, userId: user.id, projectRole, memberNum: 0,
    });
  }

  app = createHttpApp({ ctx });
  registerBackendsRoutes(app, { ctx });
});

afterEach(async () => {
  await app.close();
  rmSync(serverDir, { recursive: true, force: true });
});

describe('backends routes', () => {
  it('create, config_info, update, get_yaml and delete on the wire', async () => {
    const created = await call('padmin', 'create', good);

    expect(created.statusCode).toBe(200);
    expect(created.json()).toEqual(good);
    expect((await call('padmin', 'runpod/config_info')).json()).toEqual(good);

    const updated = await call('padmin', 'update', { ...good, regions: null });
    expect(updated.json()).toEqual({ ...good, regions: null });

    const yaml = await call('padmin', 'runpod/get_yaml');
    expect(yaml.json()).toEqual({
      name: 'runpod',
      config_yaml: 'type: runpod\ncreds:\n  type: api_key\n  api_key: good-key\n',
    });

    expect(await listProjectBackendsForWire(ctx, project.id)).toEqual([
      { name: 'runpod', config: { type: 'runpod', regions: null } },
    ]);

    const deleted = await call('padmin', 'delete', { backends_names: ['runpod'] });
    expect(deleted.statusCode).toBe(200);
    expect(deleted.body).toBe('null');
    expect(await ctx.store.count('backends')).toBe(0);
  });

  it('answers bad credentials with 400 invalid_credentials and the fields', async () => {
    const response = await call('admin', 'create', {
      ...good, creds: { type: 'api_key', api_key: 'nope' },
    });

    expect(response.statusCode).toBe(400);
    expect(response.json()).toEqual({
      detail: [
        { msg: 'Invalid credentials', code: 'invalid_credentials', fields: ['creds', 'api_key'] },
      ],
    });
    expect(response.body).not.toContain('nope');
    expect(await ctx.store.count('backends')).toBe(0);
  });

  it('answers duplicates, missing ones and uninstalled types with 400', async () => {
    await call('admin', 'create', good);
    const duplicate = await call('admin', 'create', good);

    expect(duplicate.statusCode).toBe(400);
    expect(duplicate.json().detail[0]).toEqual({
      msg: 'Resource exists',
      code: 'resource_exists',
    });

    const aws = await call('admin', 'create', { type: 'aws', creds: { type: 'default' } });
    expect(aws.json()).toEqual({
      detail: [{ msg: 'Backend not available', code: 'backend_not_available' }],
    });

    const missing = await call('admin', 'local/config_info');
    expect(missing.json().detail[0].code).toBe('resource_not_exists');
  });

  it('answers bodies that do not fit with 422', async () => {
    const unknown = await call('admin', 'create', { type: 'nosuchcloud' });

    expect(unknown.statusCode).toBe(422);
    expect(unknown.json().detail[0]).toMatchObject({ type: 'enum', loc: ['body', 'type'] });

    const extra = await call('admin', 'create', { ...good, extra: true });
    expect(extra.statusCode).toBe(422);
    expect(extra.json().detail[0]).toMatchObject({
      type: 'extra_forbidden',
      loc: ['body', 'extra'],
    });

    const path = await call('admin', 'nosuchcloud/config_info');
    expect(path.statusCode).toBe(422);
    expect(path.json().detail[0].loc).toEqual(['path', 'backend_name']);
  });

  it('lets only a global admin add the local backend', async () => {
    const denied = await call('padmin', 'create', { type: 'local' });

    expect(denied.statusCode).toBe(403);
    expect(denied.json()).toEqual({
      msg: "Access denied: only global admins can configure the local backend, because it runs"
        + " jobs as the server's own user",
      code: null,
    });
    expect((await call('padmin', 'create_yaml', { config_yaml: 'type: local' })).statusCode).toBe(
      403,
    );
    expect(await ctx.store.count('backends')).toBe(0);

    expect((await call('admin', 'create', { type: 'local' })).json()).toEqual({ type: 'local' });
  });

  it('guards every route for project admins', async () => {
    const manager = await call('manager', 'create', good);

    expect(manager.statusCode).toBe(403);
    expect(manager.json()).toEqual({ detail: { msg: 'Access denied', code: null } });
    expect((await call('manager', 'runpod/get_yaml')).statusCode).toBe(403);
  });

  it('takes YAML in create_yaml and update_yaml', async () => {
    const yaml = 'type: runpod\nregions: [eu-1]\ncreds:\n  type: api_key\n  api_key: good-key\n';
    const created = await call('padmin', 'create_yaml', { config_yaml: yaml });

    expect(created.statusCode).toBe(200);
    expect(created.body).toBe('null');
    await call('padmin', 'update_yaml', { config_yaml: yaml.replace('eu-1', 'us-3') });
    expect((await call('padmin', 'runpod/config_info')).json().regions).toEqual(['us-3']);

    const broken = await call('padmin', 'update_yaml', { config_yaml: 'a: [' });
    expect(broken.json()).toEqual({ detail: [{ msg: 'Error parsing YAML', code: 'error' }] });
  });
});
