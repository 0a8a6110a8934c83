import Fastify, { LogController } from 'fastify';
import type { FastifyBaseLogger, FastifyInstance, FastifyReply } from 'fastify';
import type { CoreContext, Logger } from '@dstack/core';
import { installApiVersionCheck } from './api-version.js';
import { installApiDocs } from './docs.js';
import { installErrorHandler } from './error-handler.js';
import { installJsonBodyParser } from './json-body.js';
import { installNotFoundHandler } from './not-found.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** The ports and settings every route works with. */
    dstack: CoreContext;
  }
}

/** Options of the HTTP app. */
export interface HttpAppOptions {
  ctx: CoreContext;
  /** Request bodies larger than this are refused with 413. */
  bodyLimitBytes?: number;
}

function isPino(logger: Logger): logger is Logger & FastifyBaseLogger {
  const candidate = logger as Partial<FastifyBaseLogger>;
  return typeof candidate.fatal === 'function' && typeof candidate.trace === 'function' &&
    typeof candidate.level === 'string';
}

/** Emits `undefined` fields as `null`: the wire always carries every field of a model. */
function serialize(payload: unknown): string {
  return JSON.stringify(payload, (_key, value: unknown) => (value === undefined ? null : value));
}

/**
 * The Fastify app with the original's wire rules: JSON parsing first, then the
 * `X-API-VERSION` check, then each route's auth, guard and body checks (in the route), one
 * error handler for every coded error, and FastAPI's 404 and 405 bodies.
 */
export function createHttpApp(options: HttpAppOptions): FastifyInstance {
  const { ctx } = options;
  const logger = ctx.logger;
  const app = Fastify({
    ...(isPino(logger) ? { loggerInstance: logger } : { logger: false }),
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: options.bodyLimitBytes ?? 64 * 1024 * 1024,
    return503OnClosing: true,
    // Long enough that an overlong name reaches its route and gets the original's answer
    // (a 404 for a project, a 400 for a run), instead of the router's 414.
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 8192 },
    // A path that cannot be decoded (`%ZZ`) or a longer parameter never reaches a route;
    // answer as for an unknown path, not with Fastify's own body that echoes the URL.
    frameworkErrors: (_error, _request, reply) => {
      void (reply as FastifyReply).status(404).send({ detail: 'Not Found' });
    },
  });

  app.decorate('dstack', ctx);
  app.setReplySerializer(serialize);
  installJsonBodyParser(app);
  installErrorHandler(app);
  installNotFoundHandler(app);
  installApiVersionCheck(app, ctx.settings.serverVersion);
  installApiDocs(app, ctx.settings.serverVersion);
  app.addHook('onResponse', async (request, reply) => {
    request.log.debug(
      { method: request.method, url: request.url, statusCode: reply.statusCode },
      'request served',
    );
  });

  return app;
}
