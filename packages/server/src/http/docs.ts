import type { FastifyInstance } from 'fastify';

interface DocumentedRoute {
  method: string;
  path: string;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"]/g, (char) => `&#${char.charCodeAt(0)};`);
}

/**
 * `/api/openapi.json` lists every API route, `/api/docs` shows that list, and `GET /` goes
 * to the docs (there is no UI bundle).
 */
export function installApiDocs(app: FastifyInstance, version: string | null): void {
  const routes: DocumentedRoute[] = [];

  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];

    for (const method of methods) {
      const documented = route.url.startsWith('/api/') && !route.url.startsWith('/api/docs');

      if (method !== 'HEAD' && documented) {
        routes.push({ method: method.toLowerCase(), path: route.url.replace(/:(\w+)/g, '{$1}') });
      }
    }
  });

  // TODO: attach each route's body schema (they live next to the handlers) so clients can
  // generate code from the document; it matters once someone asks for typed clients.
  const document = () => {
    const paths: Record<string, Record<string, unknown>> = {};

    for (const route of routes) {
      paths[route.path] = {
        ...paths[route.path],
        [route.method]: { responses: { 200: { description: 'OK' } } },
      };
    }

    return { openapi: '3.1.0', info: { title: 'dstack', version: version ?? 'dev' }, paths };
  };

  app.get('/api/openapi.json', async () => document());
  app.get('/api/docs', async (_request, reply) => {
    const items = routes
      .map((route) => `${route.method.toUpperCase()} ${escapeHtml(route.path)}`)
      .map((line) => `<li><code>${line}</code></li>`)
      .join('\n');
    const html = `<!doctype html><title>dstack API</title><h1>dstack API ${escapeHtml(
      version ?? 'dev',
    )}</h1><p><a href="/api/openapi.json">openapi.json</a></p><ul>\n${items}\n</ul>`;
    return reply.type('text/html; charset=utf-8').send(html);
  });
  app.get('/', async (_request, reply) => reply.redirect('/api/docs'));
}
