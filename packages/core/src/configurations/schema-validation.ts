import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { configurationError, type FieldPath } from './configuration-error.js';

const ajv = new Ajv({ allErrors: true, allowUnionTypes: true, strict: true });

/** A compiled input schema; compiled on first use so importing the module stays cheap. */
export interface InputSchema {
  validate(input: unknown, path: FieldPath): void;
}

/** Compiles a JSON Schema of a model's accepted input forms. */
export function createInputSchema(schema: object): InputSchema {
  let compiled: ValidateFunction | null = null;

  return {
    validate(input, path) {
      compiled ??= ajv.compile(schema);
      if (!compiled(input)) {
        throw schemaError(compiled.errors ?? [], path);
      }
    },
  };
}

function errorPath(error: ErrorObject): string[] {
  const segments = error.instancePath
    .split('/')
    .slice(1)
    .map((segment) => segment.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (error.keyword === 'required') {
    segments.push(String(error.params.missingProperty));
  } else if (error.keyword === 'additionalProperties') {
    segments.push(String(error.params.additionalProperty));
  }

  return segments;
}

function isWithin(path: string[], prefix: string[]): boolean {
  return prefix.every((segment, index) => path[index] === segment);
}

function describeTypes(types: string[]): string {
  const names = [...new Set(types.flatMap((type) => type.split(',')))].map((type) =>
    type === 'null' ? 'null' : `${/^[aeiou]/.test(type) ? 'an' : 'a'} ${type}`,
  );

  return `must be ${names.join(' or ')}`;
}

function problem(error: ErrorObject, sameSpot: ErrorObject[]): string {
  switch (error.keyword) {
    case 'required':
      return 'field required';
    case 'additionalProperties':
      return 'extra fields not permitted';
    case 'type':
      return describeTypes(sameSpot.map((other) => String(other.params.type)));
    case 'enum':
      return `must be one of: ${(error.params.allowedValues as unknown[]).join(', ')}`;
    case 'const':
      return `must be '${String(error.params.allowedValue)}'`;
    default:
      return error.message ?? 'invalid value';
  }
}

/**
 * Turns ajv's errors into one 400 error. Of the branches of a union, the one that matched the
 * value's type explains the failure best, so type mismatches yield to any other error at or
 * below the same spot, and the deepest remaining error is reported.
 */
function schemaError(errors: ErrorObject[], base: FieldPath) {
  const concrete = errors
    .filter((error) => error.keyword !== 'anyOf' && error.keyword !== 'oneOf')
    .map((error) => ({ error, path: errorPath(error) }));
  const specific = concrete.filter(({ error }) => error.keyword !== 'type');
  const candidates = concrete.filter(
    ({ error, path }) =>
      error.keyword !== 'type' || !specific.some((other) => isWithin(other.path, path)),
  );
  if (candidates.length === 0) {
    return configurationError(base, 'invalid value');
  }

  // A bound or pattern error means the value had the branch's type, so it beats a const miss.
  const rank = ({ error, path }: (typeof candidates)[number]) =>
    path.length * 2 + (error.keyword === 'const' || error.keyword === 'enum' ? 0 : 1);
  const chosen = candidates.reduce((best, next) => (rank(next) > rank(best) ? next : best));
  const spot = chosen.path.join('/');
  const sameSpot = candidates
    .filter(({ error, path }) => error.keyword === 'type' && path.join('/') === spot)
    .map(({ error }) => error);

  return configurationError([...base, ...chosen.path], problem(chosen.error, sameSpot));
}
