/** A write that would give two rows the same primary key or unique key; nothing was written. */
export class DuplicateKeyError extends Error {
  override readonly name = 'DuplicateKeyError';

  constructor(
    readonly table: string,
    readonly columns: readonly string[],
    options?: { cause?: unknown },
  ) {
    super(`duplicate key in ${table} (${columns.join(', ')})`, options);
  }
}

/** A call on a state store after `close()`. */
export class StoreClosedError extends Error {
  override readonly name = 'StoreClosedError';

  constructor() {
    super('the state store is closed');
  }
}
