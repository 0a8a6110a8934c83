import { expect } from 'vitest';
import { ServerClientError } from '@dstack/core';

/** Runs `run`, expects a 400 `ServerClientError` and checks its message and field path. */
export function expectConfigurationError(
  run: () => unknown,
  message: string,
  field?: string[],
): ServerClientError {
  let caught: unknown;
  try {
    run();
  } catch (error) {
    caught = error;
  }

  expect(caught).toBeInstanceOf(ServerClientError);
  const error = caught as ServerClientError;
  expect(error.message).toBe(message);
  expect(error.status).toBe(400);
  expect(error.code).toBe('error');
  if (field !== undefined) {
    expect(error.fields).toEqual([field]);
    expect(error.body()).toEqual({ detail: [{ msg: message, code: 'error', fields: field }] });
  }

  return error;
}
