/**
 * The original's error catalogue. Each error knows its HTTP status and its body, so the
 * server maps every one of them in a single handler.
 */

/** The `code` values a 400 body may carry. */
export type ServerClientErrorCode =
  | 'error'
  | 'resource_exists'
  | 'resource_not_exists'
  | 'invalid_credentials'
  | 'backend_not_available'
  | 'repo_does_not_exist'
  | 'gateway_error';

/** One item of a 400 body's `detail` list. */
export interface ErrorDetailItem {
  msg: string;
  code: ServerClientErrorCode | null;
  fields?: string[];
}

/** Base of every error that leaves the server with a known status and body. */
export abstract class DstackError extends Error {
  abstract readonly status: number;

  /** The JSON body sent to the client. */
  abstract body(): unknown;
}

/** A broken business rule: 400 `{"detail": [{"msg", "code", "fields"?}]}`. */
export class ServerClientError extends DstackError {
  readonly status = 400;
  readonly code: ServerClientErrorCode;
  readonly fields: string[][];

  constructor(message: string, code: ServerClientErrorCode = 'error', fields: string[][] = []) {
    super(message);
    this.name = 'ServerClientError';
    this.code = code;
    this.fields = fields;
  }

  body(): { detail: ErrorDetailItem[] } {
    if (this.fields.length === 0) {
      return { detail: [{ msg: this.message, code: this.code }] };
    }

    return {
      detail: this.fields.map((fields) => ({ msg: this.message, code: this.code, fields })),
    };
  }
}

export class ResourceExistsError extends ServerClientError {
  constructor(message = 'Resource exists', fields: string[][] = []) {
    super(message, 'resource_exists', fields);
  }
}

export class ResourceNotExistsError extends ServerClientError {
  constructor(message = 'Resource not found', fields: string[][] = []) {
    super(message, 'resource_not_exists', fields);
  }
}

export class BackendInvalidCredentialsError extends ServerClientError {
  constructor(message = 'Invalid credentials', fields: string[][] = []) {
    super(message, 'invalid_credentials', fields);
  }
}

export class BackendNotAvailableError extends ServerClientError {
  constructor(message = 'Backend not available') {
    super(message, 'backend_not_available');
  }
}

export class RepoDoesNotExistError extends ServerClientError {
  constructor(repoId: string) {
    super(`Repo ${repoId} does not exist`, 'repo_does_not_exist');
  }
}

export class GatewayError extends ServerClientError {
  constructor(message = 'Gateway error') {
    super(message, 'gateway_error');
  }
}

/** A denial inside business logic: 403 with the bare body `{"msg", "code": null}`. */
export class ForbiddenError extends DstackError {
  readonly status = 403;

  constructor(message = 'Access denied') {
    super(message);
    this.name = 'ForbiddenError';
  }

  body(): ErrorDetailItem {
    return { msg: this.message, code: null };
  }
}

/** A route guard's denial: 403 `{"detail": {"msg": "Access denied", "code": null}}`. */
export class AccessDeniedError extends DstackError {
  readonly status = 403;

  constructor(message = 'Access denied') {
    super(message);
    this.name = 'AccessDeniedError';
  }

  body(): { detail: ErrorDetailItem } {
    return { detail: { msg: this.message, code: null } };
  }
}

/** An unknown, deactivated or deleted user's token: 403 "Invalid token". */
export class InvalidTokenError extends AccessDeniedError {
  constructor() {
    super('Invalid token');
    this.name = 'InvalidTokenError';
  }
}

/** No bearer token at all: 401 `{"detail": "Not authenticated"}`. */
export class NotAuthenticatedError extends DstackError {
  readonly status = 401;

  constructor() {
    super('Not authenticated');
    this.name = 'NotAuthenticatedError';
  }

  body(): { detail: string } {
    return { detail: 'Not authenticated' };
  }
}

/** The project in the path does not exist: 404 `{"detail": {"msg": "Not found"}}`. */
export class ProjectNotFoundError extends DstackError {
  readonly status = 404;

  constructor() {
    super('Not found');
    this.name = 'ProjectNotFoundError';
  }

  body(): { detail: ErrorDetailItem } {
    return { detail: { msg: 'Not found', code: null } };
  }
}

/** One item of a 422 body, in the shape FastAPI gives pydantic errors. */
export interface ValidationIssue {
  type: string;
  loc: (string | number)[];
  msg: string;
  input: unknown;
  ctx?: Record<string, unknown>;
}

/** A request body that does not fit its schema: 422 `{"detail": [issues]}`. */
export class RequestValidationError extends DstackError {
  readonly status = 422;
  readonly issues: ValidationIssue[];

  constructor(issues: ValidationIssue[]) {
    super(issues.map((issue) => `${issue.loc.join('.')}: ${issue.msg}`).join('; '));
    this.name = 'RequestValidationError';
    this.issues = issues;
  }

  body(): { detail: ValidationIssue[] } {
    return { detail: this.issues };
  }
}

/** A stored value that no configured key can decrypt. */
export class DecryptionError extends Error {
  readonly keyType: string;
  readonly keyName: string;

  constructor(keyType: string, keyName: string, reason: string) {
    super(`Cannot decrypt a value written with ${keyType} key '${keyName}': ${reason}`);
    this.name = 'DecryptionError';
    this.keyType = keyType;
    this.keyName = keyName;
  }
}

/** A malformed log cursor; the API turns it into a 400. */
export class LogTokenError extends ServerClientError {
  constructor(token: string) {
    super(`Invalid next_token: ${token}`);
  }
}
