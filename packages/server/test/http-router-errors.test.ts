import { afterEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { createHttpApp } from '../src/http/index.js';
import { createTestContext } from './helpers.js';

let app: FastifyInstance | undefined;

afterEach(async () => {
  await app?.close();
  app = undefined;
});

function build(): FastifyInstance {
  app = createHttpApp({ ctx: createTestContext() });
  app.post('/api/project/:project_name/runs/get', async (request) => ({
    length: (request.params as { project_name: string }).project_name.length,
  }));
  return app;
}

// Both used to leave through Fastify's own handler: 414 or 400 with
// `{"error","code":"FST_ERR_...","message":"'<the whole URL>' ...","statusCode"}`.
describe('paths the router cannot take', () => {
  it('routes a 5000-character path parameter to its handler', async () => {
    const response = await build().inject({
      method: 'POST', url: `/api/project/${'a'.repeat(5000)}/runs/get`, payload: {},
    });

    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ length: 5000 });
  });

  it("answers a path that cannot be decoded with FastAPI's 404 body", async () => {
    const response = await build().inject({
      method: 'POST', url: '/api/project/%ZZ/runs/get', payload: {},
    });

    expect(response.statusCode).toBe(404);
    expect(response.json()).toEqual({ detail: 'Not Found' });
  });

  it('answers a parameter past the router limit the same way', async () => {
    const response = await build().inject({
      method: 'POST', url: `/api/project/${'a'.repeat(9000)}/runs/get`, payload: {},
    });

    expect(response.statusCode).toBe(404);
    expect(response.json()).toEqual({ detail: 'Not Found' });
  });
});
