import { afterEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { createHttpApp, parseBody } from '../src/http/index.js';
import { createTestContext } from './helpers.js';

const schema = {
  type: 'object',
  additionalProperties: false,
  properties: { tags: {} },
};

let app: FastifyInstance | undefined;

afterEach(async () => {
  await app?.close();
  app = undefined;
});

function build(): FastifyInstance {
  app = createHttpApp({ ctx: createTestContext() });
  app.post('/api/echo', async (request) => parseBody(request, schema));
  return app;
}

const json = { 'content-type': 'application/json' };

describe('deeply nested JSON bodies', () => {
  // The 422 for a wrong type echoes the input; serialising 100,000 levels of it overflowed
  // the stack, and Fastify's fallback sent its own `statusCode/error/message` body instead.
  it('answers 422 json_invalid in the pydantic shape', async () => {
    const response = await build().inject({
      method: 'POST', url: '/api/echo', headers: json,
      payload: '['.repeat(100_000) + ']'.repeat(100_000),
    });

    expect(response.statusCode).toBe(422);
    expect(response.json()).toEqual({
      detail: [{
        type: 'json_invalid',
        loc: ['body', 0],
        msg: 'JSON decode error',
        input: {},
        ctx: { error: 'nested deeper than 128 levels' },
      }],
    });
  });

  it('refuses deep nesting inside a field too, and keeps ordinary nesting', async () => {
    const deep = '{"tags":' + '{"a":'.repeat(200) + '1' + '}'.repeat(200) + '}';
    const refused = await build().inject({
      method: 'POST', url: '/api/echo', headers: json, payload: deep,
    });
    expect(refused.statusCode).toBe(422);
    expect(refused.json().detail[0].type).toBe('json_invalid');

    const fine = await app!.inject({
      method: 'POST', url: '/api/echo', headers: json, payload: '{"tags":{"a":{"b":[1,[2]]}}}',
    });
    expect(fine.statusCode).toBe(200);
    expect(fine.json()).toEqual({ tags: { a: { b: [1, [2]] } } });
  });
});

// Postgres refuses NUL in text, so secrets/create_or_update, users/create, runs/get and
// others answered 500 there; SQLite stored it. Every store now gets the same 422.
describe('NUL characters in request bodies', () => {
  it('answers 422 naming the field, for a value and for a key', async () => {
    const inValue = await build().inject({
      method: 'POST', url: '/api/echo', headers: json,
      payload: '{"tags":{"list":["ok","a\\u0000b"]}}',
    });
    expect(inValue.statusCode).toBe(422);
    expect(inValue.json()).toEqual({
      detail: [{
        type: 'value_error',
        loc: ['body', 'tags', 'list', 1],
        msg: 'Value error, text may not contain NUL (\\u0000) characters',
        input: 'a\u0000b',
      }],
    });

    const inKey = await app!.inject({
      method: 'POST', url: '/api/echo', headers: json, payload: '{"tags":{"k\\u0000":1}}',
    });
    expect(inKey.statusCode).toBe(422);
    expect(inKey.json().detail[0].loc).toEqual(['body', 'tags', 'k\u0000']);

    const fine = await app!.inject({
      method: 'POST', url: '/api/echo', headers: json, payload: '{"tags":{"k":"\\u0001é"}}',
    });
    expect(fine.statusCode).toBe(200);
    expect(fine.json()).toEqual({ tags: { k: '\u0001é' } });
  });
});
