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
