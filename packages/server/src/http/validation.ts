import { Ajv } from 'ajv';
import type { ErrorObject, ValidateFunction } from 'ajv';
import type { FastifyRequest } from 'fastify';
import { isUuidV4, parseWireTime, RequestValidationError } from '@dstack/core';
import type { ValidationIssue } from '@dstack/core';

/** A JSON schema of a request body (draft 7, as ajv reads it). */
export type JsonSchema = Record<string, unknown>;

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false, coerceTypes: false });

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

ajv.addFormat('uuid', uuidPattern);
ajv.addFormat('uuid4', { type: 'string', validate: isUuidV4 });
ajv.addFormat('date-time', { type: 'string', validate: (text) => parseWireTime(text) !== null });

const compiled = new WeakMap<JsonSchema, ValidateFunction>();

function validatorOf(schema: JsonSchema): ValidateFunction {
  let validate = compiled.get(schema);

  if (validate === undefined) {
    validate = ajv.compile(schema);
    compiled.set(schema, validate);
  }

  return validate;
}

function pathOf(instancePath: string): (string | number)[] {
  if (instancePath === '') {
    return [];
  }

  return instancePath
    .slice(1)
    .split('/')
    .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((part) => (/^\d+$/.test(part) ? Number(part) : part));
}

function valueAt(root: unknown, path: readonly (string | number)[]): unknown {
  let value = root;

  for (const part of path) {
    if (value === null || typeof value !== 'object') {
      return undefined;
    }

    value = (value as Record<string | number, unknown>)[part];
  }

  return value;
}

function setAt(root: unknown, path: readonly (string | number)[], next: unknown): void {
  const parent = valueAt(root, path.slice(0, -1));
  (parent as Record<string | number, unknown>)[path[path.length - 1] as string | number] = next;
}

function typesOf(error: ErrorObject): string[] {
  const type = error.params['type'] as string | string[] | undefined;
  return Array.isArray(type) ? type : type === undefined ? [] : type.split(',');
}

/**
 * Pydantic's lax mode: a number sent for a string becomes a string, a numeric string for a
 * number becomes a number, and the usual boolean spellings become booleans.
 */
function laxValue(expected: string[], value: unknown): { ok: boolean; value?: unknown } {
  if (expected.includes('string') && typeof value === 'number' && Number.isFinite(value)) {
    return { ok: true, value: String(value) };
  }

  if (typeof value === 'string' && /^-?\d+(\.\d+)?$/.test(value.trim())) {
    const number = Number(value);

    if (expected.includes('integer') && Number.isInteger(number)) {
      return { ok: true, value: number };
    }

    if (expected.includes('number')) {
      return { ok: true, value: number };
    }
  }

  if (expected.includes('boolean')) {
    const truthy = [1, '1', 'true', 'True', 'yes', 'on', 't', 'y'];
    const falsy = [0, '0', 'false', 'False', 'no', 'off', 'f', 'n'];

    if (truthy.includes(value as never)) {
      return { ok: true, value: true };
    }

    if (falsy.includes(value as never)) {
      return { ok: true, value: false };
    }
  }

  return { ok: false };
}

function listOf(values: readonly unknown[]): string {
  const quoted = values.map((value) => (typeof value === 'string' ? `'${value}'` : String(value)));

  if (quoted.length <= 1) {
    return quoted.join('');
  }

  return `${quoted.slice(0, -1).join(', ')} or ${quoted[quoted.length - 1]}`;
}

const typeMessages: Record<string, [string, string]> = {
  string: ['string_type', 'Input should be a valid string'],
  integer: ['int_type', 'Input should be a valid integer'],
  number: ['float_type', 'Input should be a valid number'],
  boolean: ['bool_type', 'Input should be a valid boolean'],
  array: ['list_type', 'Input should be a valid list'],
  object: [
    'model_attributes_type',
    'Input should be a valid dictionary or object to extract fields from',
  ],
};

function issueOf(error: ErrorObject, body: unknown): ValidationIssue | null {
  const path = pathOf(error.instancePath);
  const input = valueAt(body, path);
  const loc = ['body', ...path];
  const params = error.params as Record<string, unknown>;

  switch (error.keyword) {
    case 'required': {
      const field = params['missingProperty'] as string;
      return { type: 'missing', loc: [...loc, field], msg: 'Field required', input };
    }
    case 'additionalProperties': {
      const field = params['additionalProperty'] as string;
      const value = valueAt(input, [field]);
      return {
        type: 'extra_forbidden',
        loc: [...loc, field],
        msg: 'Extra inputs are not permitted',
        input: value,
      };
    }
    case 'type': {
      const expected = typesOf(error).filter((type) => type !== 'null');
      const first = expected[0] ?? 'object';

      if (first === 'integer' && typeof input === 'number') {
        return {
          type: 'int_from_float',
          loc,
          msg: 'Input should be a valid integer, got a number with a fractional part',
          input,
        };
      }

      const [type, msg] = typeMessages[first] ?? ['type_error', `Input should be a valid ${first}`];
      return { type, loc, msg, input };
    }
    case 'enum': {
      const expected = listOf(params['allowedValues'] as unknown[]);
      return { type: 'enum', loc, msg: `Input should be ${expected}`, input, ctx: { expected } };
    }
    case 'const': {
      const expected = listOf([params['allowedValue']]);
      const msg = `Input should be ${expected}`;
      return { type: 'literal_error', loc, msg, input, ctx: { expected } };
    }
    case 'pattern': {
      const pattern = params['pattern'] as string;
      return {
        type: 'string_pattern_mismatch',
        loc,
        msg: `String should match pattern '${pattern}'`,
        input,
        ctx: { pattern },
      };
    }
    case 'minLength':
    case 'maxLength': {
      const limit = params['limit'] as number;
      const short = error.keyword === 'minLength';
      const unit = limit === 1 ? 'character' : 'characters';
      return {
        type: short ? 'string_too_short' : 'string_too_long',
        loc,
        msg: `String should have ${short ? 'at least' : 'at most'} ${limit} ${unit}`,
        input,
        ctx: short ? { min_length: limit } : { max_length: limit },
      };
    }
    case 'minItems':
    case 'maxItems': {
      const limit = params['limit'] as number;
      const short = error.keyword === 'minItems';
      const actual = Array.isArray(input) ? input.length : 0;
      const unit = limit === 1 ? 'item' : 'items';
      return {
        type: short ? 'too_short' : 'too_long',
        loc,
        msg:
          `List should have ${short ? 'at least' : 'at most'} ${limit} ${unit} ` +
          `after validation, not ${actual}`,
        input,
        ctx: {
          field_type: 'List',
          [short ? 'min_length' : 'max_length']: limit,
          actual_length: actual,
        },
      };
    }
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum': {
      const limit = params['limit'] as number;
      const kinds = {
        minimum: ['greater_than_equal', 'greater than or equal to', 'ge'],
        maximum: ['less_than_equal', 'less than or equal to', 'le'],
        exclusiveMinimum: ['greater_than', 'greater than', 'gt'],
        exclusiveMaximum: ['less_than', 'less than', 'lt'],
      } as const;
      const [type, words, key] = kinds[error.keyword];
      return { type, loc, msg: `Input should be ${words} ${limit}`, input, ctx: { [key]: limit } };
    }
    case 'format': {
      const format = params['format'] as string;

      if (format === 'uuid4' && typeof input === 'string' && uuidPattern.test(input)) {
        const msg = 'UUID version 4 expected';
        return { type: 'uuid_version', loc, msg, input, ctx: { expected_version: 4 } };
      }

      if (format === 'uuid' || format === 'uuid4') {
        return { type: 'uuid_parsing', loc, msg: 'Input should be a valid UUID', input };
      }

      if (format === 'date-time') {
        const msg = 'Input should be a valid datetime';
        return { type: 'datetime_from_date_parsing', loc, msg, input };
      }

      return { type: 'value_error', loc, msg: `Value error, invalid ${format}`, input };
    }
    case 'anyOf':
    case 'oneOf':
    case 'if':
      return null;
    default:
      const msg = `Value error, ${error.message ?? 'invalid value'}`;
      return { type: 'value_error', loc, msg, input };
  }
}

/** Options of a body check. */
export interface ValidateBodyOptions {
  /** The route accepts a missing body and applies the schema's defaults to `{}`. */
  optional?: boolean;
}

/**
 * Checks a value against a JSON schema, filling defaults in place, and returns it typed;
 * throws a 422 RequestValidationError with pydantic-shaped issues (`loc: ["body", ...]`).
 */
export function validateBody<T>(
  body: unknown,
  schema: JsonSchema,
  options: ValidateBodyOptions = {},
): T {
  if (body === undefined || body === null) {
    if (!options.optional) {
      throw new RequestValidationError([
        { type: 'missing', loc: ['body'], msg: 'Field required', input: null },
      ]);
    }

    body = {};
  }

  const validate = validatorOf(schema);

  for (let attempt = 0; attempt < 8; attempt += 1) {
    if (validate(body)) {
      return body as T;
    }

    const errors = validate.errors ?? [];
    let changed = false;

    for (const error of errors) {
      if (error.keyword !== 'type' || error.instancePath === '') {
        continue;
      }

      const path = pathOf(error.instancePath);
      const lax = laxValue(typesOf(error), valueAt(body, path));

      if (lax.ok) {
        setAt(body, path, lax.value);
        changed = true;
      }
    }

    if (!changed) {
      break;
    }
  }

  const issues = (validate.errors ?? [])
    .map((error) => issueOf(error, body))
    .filter((issue): issue is ValidationIssue => issue !== null);

  throw new RequestValidationError(
    issues.length > 0
      ? issues
      : [{ type: 'value_error', loc: ['body'], msg: 'Invalid body', input: body }],
  );
}

/** Validates the request's body; call it after the auth and role checks of the route. */
export function parseBody<T>(
  request: FastifyRequest,
  schema: JsonSchema,
  options?: ValidateBodyOptions,
): T {
  return validateBody<T>(request.body, schema, options);
}
