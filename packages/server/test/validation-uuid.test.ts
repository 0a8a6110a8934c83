import { describe, expect, it } from 'vitest';
import { RequestValidationError } from '@dstack/core';
import { validateBody } from '../src/http/index.js';

const schema = {
  type: 'object',
  additionalProperties: false,
  properties: { id: { type: 'string', format: 'uuid4' }, any: { type: 'string', format: 'uuid' } },
};

function issuesOf(body: unknown): unknown {
  try {
    validateBody(body, schema);
  } catch (error) {
    expect(error).toBeInstanceOf(RequestValidationError);
    return (error as RequestValidationError).body();
  }

  throw new Error('accepted');
}

describe('UUID fields', () => {
  it('tells a well-formed UUID of another version from garbage, as pydantic does', () => {
    const v1 = '00000000-0000-1000-8000-000000000000';

    expect(issuesOf({ id: v1 })).toEqual({
      detail: [{
        type: 'uuid_version',
        loc: ['body', 'id'],
        msg: 'UUID version 4 expected',
        input: v1,
        ctx: { expected_version: 4 },
      }],
    });
    expect(issuesOf({ id: 'not-a-uuid' })).toEqual({
      detail: [{
        type: 'uuid_parsing',
        loc: ['body', 'id'],
        msg: 'Input should be a valid UUID',
        input: 'not-a-uuid',
      }],
    });
  });

  it('accepts any version where the field is a plain UUID, and a v4 where it must be one', () => {
    const v4 = '3f1c2b9e-8d7a-4c6b-9e5f-1a2b3c4d5e6f';

    expect(validateBody({ id: v4, any: '00000000-0000-1000-8000-000000000000' }, schema))
      .toEqual({ id: v4, any: '00000000-0000-1000-8000-000000000000' });
  });
});
