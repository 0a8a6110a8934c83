import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DstackServer } from '../src/index.js';
import { addUser, createTestServer, post } from './helpers.js';

let server: DstackServer;
let tokens: Record<string, string>;

const roles = ['pu', 'pm', 'pa'] as const;

beforeEach(async () => {
  server = await createTestServer();
  tokens = { admin: server.adminToken };
  const projectRoles = { pu: 'user', pm: 'manager', pa: 'admin' } as const;

  for (const name of roles) {
    tokens[name] = await addUser(server, name);
    await post(server, '/api/projects/main/add_members', server.adminToken,
      { members: [{ username: name, project_role: projectRoles[name] }] });
  }

  tokens.outsider = await addUser(server, 'outsider');
});

afterEach(async () => {
  await server.close();
});

const accessDenied = { detail: { msg: 'Access denied', code: null } };
const notFound = { detail: [{ msg: 'Resource not found', code: 'resource_not_exists' }] };

/** Which callers a guard lets through, by name. */
async function allowed(url: string, body: unknown): Promise<string[]> {
  const passed: string[] = [];

  for (const name of ['outsider', ...roles, 'admin']) {
    const response = await post(server, url, tokens[name]!, body);

    if (response.statusCode === 403) {
      expect(response.json()).toEqual(accessDenied);
    } else {
      passed.push(name);
    }
  }

  expect([401, 403]).toContain((await post(server, url, null, body)).statusCode);
  return passed;
}

describe('gateways', () => {
  it('lists none and finds none, for members and (public projects) visitors', async () => {
    expect(await allowed('/api/project/main/gateways/list', {}))
      .toEqual(['pu', 'pm', 'pa', 'admin']);
    const listed = await post(server, '/api/project/main/gateways/list', tokens.pu!);
    expect(listed.statusCode).toBe(200);
    expect(listed.json()).toEqual([]);

    const got = await post(server, '/api/project/main/gateways/get', tokens.pu!, { name: 'gw' });
    expect(got.statusCode).toBe(400);
    expect(got.json()).toEqual(notFound);

    await post(server, '/api/projects/main/update', server.adminToken, { is_public: true });
    const visitor = await post(server, '/api/project/main/gateways/list', tokens.outsider!, {});
    expect(visitor.json()).toEqual([]);
  });

  it('refuses every mutation with a 400 that says why, for project admins only', async () => {
    const bodies: Record<string, unknown> = {
      get_plan: { spec: { configuration: { type: 'gateway' } } },
      apply: { plan: { spec: {} }, force: false },
      create: { configuration: { type: 'gateway' } },
      delete: { names: ['gw'] },
      set_default: { name: 'gw' },
      set_wildcard_domain: { name: 'gw', wildcard_domain: 'example.com' },
    };

    for (const [path, body] of Object.entries(bodies)) {
      const url = `/api/project/main/gateways/${path}`;
      expect(await allowed(url, body)).toEqual(['pa', 'admin']);
      const response = await post(server, url, tokens.pa!, body);
      expect(response.statusCode).toBe(400);
      expect(response.json().detail[0].code).toBe('error');
      expect(response.json().detail[0].msg).toMatch(/does not support gateways yet/);
      expect((await post(server, url, tokens.pa!, {})).statusCode).toBe(422);
    }
  });
});

describe('volumes', () => {
  it('lists none on both paths and finds none', async () => {
    const all = await post(server, '/api/volumes/list', tokens.outsider!, {});
    expect(all.statusCode).toBe(200);
    expect(all.json()).toEqual([]);
    expect((await post(server, '/api/volumes/list', tokens.pu!, { limit: 101 })).statusCode)
      .toBe(422);
    expect([401, 403]).toContain((await post(server, '/api/volumes/list', null, {})).statusCode);

    expect(await allowed('/api/project/main/volumes/list', {}))
      .toEqual(['pu', 'pm', 'pa', 'admin']);
    expect((await post(server, '/api/project/main/volumes/list', tokens.pu!, {})).json())
      .toEqual([]);

    const got = await post(server, '/api/project/main/volumes/get', tokens.pu!, { name: 'v' });
    expect(got.json()).toEqual(notFound);
  });

  it('refuses create and delete with a clear 400', async () => {
    const create = await post(server, '/api/project/main/volumes/create', tokens.pu!, {
      configuration: { type: 'volume', name: 'v', backend: 'aws', region: 'x', size: 10 },
    });
    expect(create.statusCode).toBe(400);
    expect(create.json()).toEqual({
      detail: [{ msg: 'This server does not support volumes yet', code: 'error' }],
    });

    const remove = await post(server, '/api/project/main/volumes/delete', tokens.pu!,
      { names: ['v'] });
    expect(remove.statusCode).toBe(400);
    expect((await post(server, '/api/project/main/volumes/delete', tokens.pu!, {})).statusCode)
      .toBe(422);
    expect((await post(server, '/api/project/main/volumes/create', tokens.outsider!, {}))
      .statusCode).toBe(403);
  });
});

describe('templates, exports and imports', () => {
  it('lists none for members', async () => {
    for (const path of ['templates/list', 'exports/list', 'imports/list']) {
      const url = `/api/project/main/${path}`;
      expect(await allowed(url, {})).toEqual(['pu', 'pm', 'pa', 'admin']);
      expect((await post(server, url, tokens.pu!, {})).json()).toEqual([]);
    }

    expect((await post(server, '/api/project/ghost/templates/list', tokens.pu!)).statusCode)
      .toBe(404);
  });

  it('refuses export and import changes for admins with a 400', async () => {
    for (const path of ['exports/create', 'exports/update', 'exports/delete', 'imports/delete']) {
      const url = `/api/project/main/${path}`;
      expect(await allowed(url, { name: 'x' })).toEqual(['pa', 'admin']);
      const response = await post(server, url, tokens.pa!, { name: 'x' });
      expect(response.statusCode).toBe(400);
      expect(response.json().detail[0].msg).toMatch(/does not support exports and imports/);
    }
  });
});
