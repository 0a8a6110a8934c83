import type { FastifyInstance } from 'fastify';

interface KnownRoute {
  methods: Set<string>;
  pattern: RegExp;
}

function patternOf(url: string): RegExp {
  const source = url
    .split('/')
    .map((part) => {
      if (part === '*') {
        return '.*';
      }

      if (part.startsWith(':')) {
        return '[^/]+';
      }

      return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    })
    .join('/');

  return new RegExp(`^${source}/?$`);
}

/**
 * Unknown paths get FastAPI's 404 `{"detail":"Not Found"}`; a known path with the wrong
 * method gets 405 `{"detail":"Method Not Allowed"}` with an `Allow` header.
 */
export function installNotFoundHandler(app: FastifyInstance): void {
  const routes = new Map<string, KnownRoute>();

  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    const known = routes.get(route.url) ?? { methods: new Set(), pattern: patternOf(route.url) };
    methods.forEach((method) => known.methods.add(method.toUpperCase()));
    routes.set(route.url, known);
  });

  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0] ?? '';
    const allowed = new Set<string>();

    for (const route of routes.values()) {
      if (route.pattern.test(path)) {
        route.methods.forEach((method) => allowed.add(method));
      }
    }

    if (allowed.size > 0 && !allowed.has(request.method)) {
      return reply
        .status(405)
        .header('allow', [...allowed].sort().join(', '))
        .send({ detail: 'Method Not Allowed' });
    }

    return reply.status(404).send({ detail: 'Not Found' });
  });
}
