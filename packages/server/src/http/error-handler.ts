import type { FastifyError, FastifyInstance } from 'fastify';
import { DstackError, NotAuthenticatedError } from '@dstack/core';

interface CodedError {
  status: number;
  body(): unknown;
}

/** A DstackError, also when it comes from another copy of @dstack/core. */
function isCodedError(error: unknown): error is CodedError {
  if (error instanceof DstackError) {
    return true;
  }

  const candidate = error as Partial<CodedError> | null;
  return (
    typeof candidate === 'object' &&
    candidate !== null &&
    typeof candidate.status === 'number' &&
    typeof candidate.body === 'function'
  );
}

/**
 * Sends every DstackError with its own status and body. Fastify's own 4xx errors (body too
 * large, unsupported media type) keep their status with a FastAPI-like `detail` string;
 * anything else is logged and answered with a bare 500, never a stack trace.
 */
export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (isCodedError(error)) {
      if (error instanceof NotAuthenticatedError || error.status === 401) {
        void reply.header('www-authenticate', 'Bearer');
      }

      return reply.status(error.status).send(error.body());
    }

    // The original answers an OS "file name too long" (errno 36/63) as a client error.
    if ((error as NodeJS.ErrnoException).code === 'ENAMETOOLONG') {
      return reply.status(400).send({ detail: 'Filename too long' });
    }

    const status = error.statusCode;

    if (typeof status === 'number' && status >= 400 && status < 500) {
      return reply.status(status).send({ detail: error.message });
    }

    request.log.error({ err: error, url: request.url }, 'request failed');
    return reply.status(500).send({ detail: 'Internal Server Error' });
  });
}
