import type { FastifyInstance } from 'fastify';
import { RequestValidationError } from '@dstack/core';

/** Where JSON.parse stopped, from its message (`... at position 12`, or the end of input). */
function errorPosition(error: unknown, text: string): number {
  const message = error instanceof Error ? error.message : '';
  const match = /position (\d+)/.exec(message);

  if (match !== null) {
    return Number(match[1]);
  }

  return /end of JSON input/i.test(message) ? text.length : 0;
}

/**
 * Parses a request body as JSON the way FastAPI does: an empty body is no body (routes
 * with optional bodies take their defaults), and malformed JSON is a 422 `json_invalid`.
 */
export function parseJsonBody(text: string): unknown {
  if (text.trim() === '') {
    return undefined;
  }

  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new RequestValidationError([
      {
        type: 'json_invalid',
        loc: ['body', errorPosition(error, text)],
        msg: 'JSON decode error',
        input: {},
        ctx: { error: error instanceof Error ? error.message : 'Invalid JSON' },
      },
    ]);
  }
}

/**
 * JSON for every content type on /api (clients do not always say `application/json`); other
 * paths get the raw bytes, so a plugin like the service proxy can forward them untouched.
 * A plugin may register its own parsers inside its encapsulated context.
 */
export function installJsonBodyParser(app: FastifyInstance): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (request, body: Buffer, done) => {
    if (!request.url.startsWith('/api/')) {
      done(null, body);
      return;
    }

    try {
      done(null, parseJsonBody(body.toString('utf8')));
    } catch (error) {
      done(error as Error, undefined);
    }
  });
}
