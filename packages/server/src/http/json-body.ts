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

type JsonPath = (string | number)[];

function nulIssue(path: JsonPath, input: string): RequestValidationError {
  return new RequestValidationError([
    {
      type: 'value_error',
      loc: ['body', ...path],
      msg: 'Value error, text may not contain NUL (\\u0000) characters',
      input,
    },
  ]);
}

/**
 * Refuses what no request model needs and some stores cannot take: nesting past `limit`, and
 * NUL characters in strings or keys (Postgres refuses them in text, which was a 500).
 */
function checkParsed(value: unknown, limit: number): void {
  if (typeof value === 'string' && value.includes('\u0000')) {
    throw nulIssue([], value);
  }

  const pending: [object, JsonPath][] = typeof value === 'object' && value !== null
    ? [[value, []]]
    : [];

  while (pending.length > 0) {
    const [node, path] = pending.pop() as [object, JsonPath];
    if (path.length >= limit) {
      throw jsonInvalid(0, `nested deeper than ${limit} levels`);
    }

    const isArray = Array.isArray(node);
    for (const [key, child] of Object.entries(node)) {
      const at = [...path, isArray ? Number(key) : key];
      if (!isArray && key.includes('\u0000')) {
        throw nulIssue(at, key);
      }

      if (typeof child === 'string' && child.includes('\u0000')) {
        throw nulIssue(at, child);
      }

      if (typeof child === 'object' && child !== null) {
        pending.push([child as object, at]);
      }
    }
  }
}

/**
 * Parses a request body as JSON the way FastAPI does: an empty body is no body (routes
 * with optional bodies take their defaults), and malformed JSON is a 422 `json_invalid`.
 * So is JSON nested deeper than `maxJsonDepth`; a NUL character in text is a 422 naming it.
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

  checkParsed(parsed, maxJsonDepth);

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
