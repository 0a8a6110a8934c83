import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DstackServer } from '../src/index.js';
import { addUser, createTestServer, post } from './helpers.js';

let server: DstackServer;
let user: string;

beforeAll(async () => {
  server = await createTestServer();
  user = await addUser(server, 'plain');
});

afterAll(async () => {
  await server.close();
});

function send(url: string, headers: Record<string, string>, payload?: string) {
  return server.inject({
    method: 'POST',
    url,
    headers: { 'content-type': 'application/json', ...headers },
    ...(payload === undefined ? {} : { payload }),
  });
}

describe('the order of checks (§0)', () => {
  it('1. malformed JSON wins over a bad version header and a bad token', async () => {
    const response = await send('/api/projects/main/set_members', {
      'x-api-version': 'nonsense', authorization: 'Bearer nope',
    }, '{"members": [');

    expect(response.statusCode).toBe(422);
    expect(response.json().detail[0]).toMatchObject({ type: 'json_invalid', loc: ['body', 13] });
  });

  it('2. the version header wins over auth', async () => {
    const response = await send('/api/users/create', { 'x-api-version': '1..0' }, '{}');

    expect(response.statusCode).toBe(400);
    expect(response.json()).toEqual({ detail: [{ msg: 'Invalid version: 1..0', code: null }] });
  });

  it('3. auth wins over the project lookup', async () => {
    const missing = await send('/api/projects/ghost/get', {}, '{}');
    expect(missing.statusCode).toBe(401);
    expect(missing.headers['www-authenticate']).toBe('Bearer');

    const invalid = await send('/api/projects/ghost/get', { authorization: 'Bearer nope' });
    expect(invalid.statusCode).toBe(403);
    expect(invalid.json()).toEqual({ detail: { msg: 'Invalid token', code: null } });
  });

  it('4. the project lookup (404) wins over the role check (403)', async () => {
    const auth = { authorization: `Bearer ${user}` };
    const ghost = await send('/api/projects/ghost/set_members', auth);
    expect(ghost.statusCode).toBe(404);
    expect(ghost.json()).toEqual({ detail: { msg: 'Not found', code: null } });

    const main = await send('/api/projects/main/set_members', auth);
    expect(main.statusCode).toBe(403);
  });

  it('5. the role check wins over body validation: {} from a plain user is 403', async () => {
    for (const url of ['/api/users/create', '/api/projects/main/set_members']) {
      const response = await send(url, { authorization: `Bearer ${user}` }, '{}');
      expect(response.statusCode, url).toBe(403);
      expect(response.json()).toEqual({ detail: { msg: 'Access denied', code: null } });
    }
  });

  it('6. body validation (422) comes before business rules (400)', async () => {
    const invalid = await send('/api/users/create', {
      authorization: `Bearer ${server.adminToken}`,
    }, '{"username": "bad name", "global_role": "root"}');
    expect(invalid.statusCode).toBe(422);
    expect(invalid.json().detail).toEqual([expect.objectContaining({
      type: 'enum', loc: ['body', 'global_role'],
    })]);

    const business = await send('/api/users/create', {
      authorization: `Bearer ${server.adminToken}`,
    }, '{"username": "bad name", "global_role": "user"}');
    expect(business.statusCode).toBe(400);
    expect(business.json().detail[0].code).toBe('error');
  });

  it('answers unknown /api routes with 404 and a wrong method with 405', async () => {
    const unknown = await server.inject({ method: 'POST', url: '/api/users/nope' });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json()).toEqual({ detail: 'Not Found' });

    const wrong = await server.inject({ method: 'GET', url: '/api/projects/main/get' });
    expect(wrong.statusCode).toBe(405);
    expect(wrong.json()).toEqual({ detail: 'Method Not Allowed' });
  });

  it('serves get_info, the healthcheck and auth providers without a token', async () => {
    const info = await server.inject({ method: 'POST', url: '/api/server/get_info' });
    expect(info.json()).toEqual({ server_version: '0.21.0' });

    const health = await server.inject({ method: 'GET', url: '/healthcheck' });
    expect(health.json()).toEqual({ status: 'running' });

    const providers = await server.inject({ method: 'POST', url: '/api/auth/list_providers' });
    expect(providers.json()).toEqual([]);

    const state = Buffer.from(JSON.stringify({ value: 'x', local_port: 8123 })).toString('base64');
    const redirect = await post(server, '/api/auth/get_next_redirect', null, {
      code: 'c', state,
    });
    expect(redirect.json().redirect_url).toBe(
      `http://localhost:8123/auth/callback?code=c&state=${encodeURIComponent(state)}`,
    );

    const bad = await post(server, '/api/auth/get_next_redirect', null, {
      code: 'c', state: '!!!',
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().detail[0].msg).toContain('Invalid state token');
  });
});

describe('API docs', () => {
  it('serves /api/docs without the version check and redirects / to it', async () => {
    const docs = await server.inject({
      method: 'GET', url: '/api/docs', headers: { 'x-api-version': 'not a version' },
    });
    expect(docs.statusCode).toBe(200);
    expect(docs.headers['content-type']).toContain('text/html');
    expect(docs.body).toContain('POST /api/users/list');

    const spec = await server.inject({ method: 'GET', url: '/api/openapi.json' });
    expect(spec.json().paths['/api/projects/{project_name}/get']).toHaveProperty('post');

    const root = await server.inject({ method: 'GET', url: '/' });
    expect(root.statusCode).toBe(302);
    expect(root.headers.location).toBe('/api/docs');
  });
});
