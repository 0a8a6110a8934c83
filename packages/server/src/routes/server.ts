import type { FastifyInstance } from 'fastify';
import type { RouteDeps } from './route-deps.js';

/** `get_info`, the healthcheck and the auth provider list: no auth needed. */
export function registerServerRoutes(app: FastifyInstance, deps: RouteDeps): void {
  const { settings } = deps.ctx;

  app.post('/api/server/get_info', async () => ({ server_version: settings.serverVersion }));
  app.get('/healthcheck', async () => ({ status: 'running' }));
  app.post('/api/auth/list_providers', async () => []);
}
