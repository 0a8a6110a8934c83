/** A pino-shaped log function: an object of fields first, then a short message. */
export interface LogFn {
  (fields: object, message?: string): void;
  (message: string): void;
}

/**
 * The logger the library writes to. Pass pino or anything shaped like it; without one the
 * library is silent. Never give it a secret or a token.
 */
export interface Logger {
  error: LogFn;
  warn: LogFn;
  info: LogFn;
  debug: LogFn;
  child(bindings: object): Logger;
}

const noop = (): void => undefined;

/** A logger that drops everything. */
export const silentLogger: Logger = {
  error: noop,
  warn: noop,
  info: noop,
  debug: noop,
  child: () => silentLogger,
};
