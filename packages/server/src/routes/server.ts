import type { FastifyInstance } from 'fastify';
import { ServerClientError } from '@dstack/core';
import { parseBody } from '../http/index.js';
import type { RouteDeps } from './route-deps.js';

const redirectSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['code', 'state'],
  properties: { code: { type: 'string' }, state: { type: 'string' } },
};

/** Where an OAuth callback goes next: the CLI's local port when the state names one. */
function nextRedirect(code: string, state: string): string | null {
  let decoded: { value?: unknown; local_port?: unknown };

  try {
    decoded = JSON.parse(Buffer.from(state, 'base64').toString('utf8')) as typeof decoded;
  } catch {
    throw new ServerClientError('Invalid state token');
  }

  if (decoded === null || typeof decoded !== 'object' || typeof decoded.value !== 'string') {
    throw new ServerClientError('Invalid state token');
  }

  if (decoded.local_port === null || decoded.local_port === undefined) {
    return null;
  }

  const query = new URLSearchParams({ code, state }).toString();
  return `http://localhost:${String(decoded.local_port)}/auth/callback?${query}`;
}

/** `get_info`, the healthcheck and the auth endpoints that need no token. */
export function registerServerRoutes(app: FastifyInstance, deps: RouteDeps): void {
  const { settings } = deps.ctx;

  app.post('/api/server/get_info', async () => ({ server_version: settings.serverVersion }));
  app.get('/healthcheck', async () => ({ status: 'running' }));
  app.post('/api/auth/list_providers', async () => []);
  app.post('/api/auth/get_next_redirect', async (request) => {
    const body = parseBody<{ code: string; state: string }>(request, redirectSchema);
    return { redirect_url: nextRedirect(body.code, body.state) };
  });
}
