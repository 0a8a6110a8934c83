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

// Far deeper than any request model goes; past some depth, echoing the value in a 422 or
// storing it overflows the stack.
const maxJsonDepth = 128;

function jsonInvalid(position: number, reason: string): RequestValidationError {
  return new RequestValidationError([
    {
      type: 'json_invalid',
      loc: ['body', position],
      msg: 'JSON decode error',
      input: {},
      ctx: { error: reason },
    },
  ]);
}

function depthExceeds(value: unknown, limit: number): boolean {
  const pending: [object, number][] = typeof value === 'object' && value !== null
    ? [[value, 1]]
    : [];

  while (pending.length > 0) {
    const [node, depth] = pending.pop() as [object, number];
    if (depth > limit) {
      return true;
    }

    for (const child of Object.values(node)) {
      if (typeof child === 'object' && child !== null) {
        pending.push([child as object, depth + 1]);
      }
    }
  }

  return false;
}

/**
 * Parses a request body as JSON the way FastAPI does: an empty body is no body (routes
 * with optional bodies take their defaults), and malformed JSON is a 422 `json_invalid`.
 * So is JSON nested deeper than `maxJsonDepth`.
 */
export function parseJsonBody(text: string): unknown {
  if (text.trim() === '') {
    return undefined;
  }

  let parsed: unknown;

  try {
    parsed = JSON.parse(text) as unknown;
  } catch (error) {
    const reason = error instanceof Error ? error.message : 'Invalid JSON';
    throw jsonInvalid(errorPosition(error, text), reason);
  }

  if (depthExceeds(parsed, maxJsonDepth)) {
    throw jsonInvalid(0, `nested deeper than ${maxJsonDepth} levels`);
  }

  return parsed;
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
