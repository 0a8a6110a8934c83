import { afterEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { readFile } from 'node:fs/promises';
import { ForbiddenError, ResourceExistsError, ServerClientError } from '@dstack/core';
import { createHttpApp, parseBody, requireUser } from '../src/http/index.js';
import { createTestContext } from './helpers.js';

const schema = {
  type: 'object',
  additionalProperties: false,
  required: ['username', 'global_role'],
  properties: {
    username: { type: 'string' },
    global_role: { enum: ['admin', 'user'] },
    email: { type: ['string', 'null'], default: null },
    active: { type: 'boolean', default: true },
    limit: { type: 'integer', minimum: 0, maximum: 2000, default: 2000 },
  },
};

let app: FastifyInstance | undefined;

function build(): FastifyInstance {
  app = createHttpApp({ ctx: createTestContext() });
  app.post('/api/echo', async (request) => parseBody(request, schema));
  app.post('/api/echo_optional', async (request) => parseBody(request, schema, { optional: true }));
  app.post('/api/needs_user', async (request) => {
    await requireUser(request);
    return parseBody(request, schema);
  });
  app.post('/api/nothing', async () => null);
  app.post('/proxy/raw', async (request) => ({
    buffer: Buffer.isBuffer(request.body),
    text: Buffer.isBuffer(request.body) ? request.body.toString('utf8') : null,
  }));
  app.post('/api/nulls', async () => ({ a: undefined, b: null, c: [undefined] }));
  app.post('/api/exists', async () => {
    throw new ResourceExistsError();
  });
  app.post('/api/forbidden', async () => {
    throw new ForbiddenError('User cannot create projects');
  });
  app.post('/api/fields', async () => {
    throw new ServerClientError('Invalid credentials', 'invalid_credentials', [
      ['creds', 'api_key'],
      ['creds', 'secret'],
    ]);
  });
  app.post('/api/long_name', async () => {
    await readFile(`/tmp/${'x'.repeat(5000)}`);
  });
  app.post('/api/crash', async () => {
    throw new Error('secret internals');
  });
  return app;
}

afterEach(async () => {
  await app?.close();
  app = undefined;
});

const json = { 'content-type': 'application/json' };

describe('the HTTP framework', () => {
  it('answers malformed JSON with 422 json_invalid before the version check', async () => {
    const response = await build().inject({
      method: 'POST', url: '/api/needs_user', headers: { ...json, 'x-api-version': '1..0' },
      payload: '{"username": ',
    });

    expect(response.statusCode).toBe(422);
    const detail = response.json().detail;
    expect(detail).toHaveLength(1);
    expect(detail[0].type).toBe('json_invalid');
    expect(detail[0].loc[0]).toBe('body');
    expect(detail[0].msg).toBe('JSON decode error');
  });

  it('checks X-API-VERSION before auth', async () => {
    const invalid = await build().inject({
      method: 'POST', url: '/api/needs_user', headers: { ...json, 'x-api-version': 'version1' },
      payload: '{}',
    });
    expect(invalid.statusCode).toBe(400);
    expect(invalid.json()).toEqual({ detail: [{ msg: 'Invalid version: version1', code: null }] });

    const newer = await app!.inject({
      method: 'POST', url: '/api/needs_user', headers: { 'x-api-version': '0.22.0' },
    });
    expect(newer.statusCode).toBe(400);
    expect(newer.json()).toEqual({
      detail: [{
        msg: 'The client/CLI version (0.22.0) is incompatible with the server version (0.21.0).',
        code: 'error',
      }],
    });

    for (const accepted of ['0.21.9', '0.20.1', 'latest', '0.0.0', '0.21.1rc2']) {
      const response = await app!.inject({
        method: 'POST', url: '/api/needs_user', headers: { 'x-api-version': accepted },
      });
      expect(response.statusCode, accepted).toBe(401);
    }
  });

  it('asks for a bearer token with 401 and refuses an unknown one with 403', async () => {
    const missing = await build().inject({ method: 'POST', url: '/api/needs_user', payload: {} });
    expect(missing.statusCode).toBe(401);
    expect(missing.headers['www-authenticate']).toBe('Bearer');
    expect(missing.json()).toEqual({ detail: 'Not authenticated' });

    const basic = await app!.inject({
      method: 'POST', url: '/api/needs_user', headers: { authorization: 'Basic abc' },
    });
    expect(basic.statusCode).toBe(401);

    const unknown = await app!.inject({
      method: 'POST', url: '/api/needs_user', headers: { authorization: 'bearer nope' },
      payload: {},
    });
    expect(unknown.statusCode).toBe(403);
    expect(unknown.json()).toEqual({ detail: { msg: 'Invalid token', code: null } });
  });

  it('turns schema failures into pydantic-shaped 422 issues', async () => {
    const response = await build().inject({
      method: 'POST', url: '/api/echo',
      payload: { global_role: 'root', extra: 1, active: 'maybe', limit: 2.5 },
    });

    expect(response.statusCode).toBe(422);
    expect(response.json().detail).toEqual(expect.arrayContaining([
      {
        type: 'missing', loc: ['body', 'username'], msg: 'Field required',
        input: expect.any(Object),
      },
      {
        type: 'extra_forbidden', loc: ['body', 'extra'], msg: 'Extra inputs are not permitted',
        input: 1,
      },
      {
        type: 'enum', loc: ['body', 'global_role'], msg: "Input should be 'admin' or 'user'",
        input: 'root', ctx: { expected: "'admin' or 'user'" },
      },
      {
        type: 'bool_type', loc: ['body', 'active'], msg: 'Input should be a valid boolean',
        input: 'maybe',
      },
      {
        type: 'int_from_float', loc: ['body', 'limit'],
        msg: 'Input should be a valid integer, got a number with a fractional part', input: 2.5,
      },
    ]));
    expect(response.json().detail).toHaveLength(5);
  });

  it('fills defaults, turns numbers into strings and rejects a missing required body', async () => {
    const ok = await build().inject({
      method: 'POST', url: '/api/echo', payload: { username: 42, global_role: 'user' },
    });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toEqual({
      username: '42', global_role: 'user', email: null, active: true, limit: 2000,
    });

    const none = await app!.inject({ method: 'POST', url: '/api/echo' });
    expect(none.statusCode).toBe(422);
    expect(none.json()).toEqual({
      detail: [{ type: 'missing', loc: ['body'], msg: 'Field required', input: null }],
    });

    const range = await app!.inject({
      method: 'POST', url: '/api/echo_optional',
      payload: { username: 'a', global_role: 'user', limit: 2001 },
    });
    expect(range.statusCode).toBe(422);
    expect(range.json().detail[0]).toMatchObject({
      type: 'less_than_equal', loc: ['body', 'limit'],
    });
  });

  it('sends null, every null field, coded errors and a bare 500', async () => {
    const nothing = await build().inject({ method: 'POST', url: '/api/nothing' });
    expect(nothing.statusCode).toBe(200);
    expect(nothing.body).toBe('null');
    expect(nothing.headers['content-type']).toContain('application/json');

    const nulls = await app!.inject({ method: 'POST', url: '/api/nulls' });
    expect(nulls.body).toBe('{"a":null,"b":null,"c":[null]}');

    const exists = await app!.inject({ method: 'POST', url: '/api/exists' });
    expect(exists.statusCode).toBe(400);
    expect(exists.json()).toEqual({
      detail: [{ msg: 'Resource exists', code: 'resource_exists' }],
    });

    const forbidden = await app!.inject({ method: 'POST', url: '/api/forbidden' });
    expect(forbidden.statusCode).toBe(403);
    expect(forbidden.json()).toEqual({ msg: 'User cannot create projects', code: null });

    const fields = await app!.inject({ method: 'POST', url: '/api/fields' });
    expect(fields.statusCode).toBe(400);
    expect(fields.json()).toEqual({
      detail: [
        { msg: 'Invalid credentials', code: 'invalid_credentials', fields: ['creds', 'api_key'] },
        { msg: 'Invalid credentials', code: 'invalid_credentials', fields: ['creds', 'secret'] },
      ],
    });

    const long = await app!.inject({ method: 'POST', url: '/api/long_name' });
    expect(long.statusCode).toBe(400);
    expect(long.json()).toEqual({ detail: 'Filename too long' });

    const crash = await app!.inject({ method: 'POST', url: '/api/crash' });
    expect(crash.statusCode).toBe(500);
    expect(crash.json()).toEqual({ detail: 'Internal Server Error' });
    expect(crash.body).not.toContain('secret internals');
  });

  it('answers unknown routes with 404 and wrong methods with 405', async () => {
    const unknown = await build().inject({
      method: 'POST', url: '/api/nope', headers: { 'x-api-version': 'bad..' },
    });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json()).toEqual({ detail: 'Not Found' });

    const wrong = await app!.inject({ method: 'GET', url: '/api/echo' });
    expect(wrong.statusCode).toBe(405);
    expect(wrong.json()).toEqual({ detail: 'Method Not Allowed' });
    expect(wrong.headers['allow']).toBe('POST');
  });

  it('hands bodies outside /api to the route as raw bytes, whatever their type', async () => {
    for (const type of ['text/plain', 'application/json', 'application/octet-stream']) {
      const response = await build().inject({
        method: 'POST', url: '/proxy/raw', headers: { 'content-type': type },
        payload: '{not json',
      });
      expect(response.json(), type).toEqual({ buffer: true, text: '{not json' });
      await app?.close();
    }
  });
});
