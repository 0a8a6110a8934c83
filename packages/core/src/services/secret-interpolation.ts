import { ServerClientError } from '../errors/server-errors.js';

/**
 * A `${{ secrets.NAME }}` reference that cannot be resolved. The message names the reference,
 * never a value, so it can go to the user and to logs as it is.
 */
export class SecretInterpolationError extends ServerClientError {
  /** The references that are missing, as `secrets.NAME`. */
  readonly missing: string[];

  constructor(message: string, missing: string[] = []) {
    super(message);
    this.name = 'SecretInterpolationError';
    this.missing = missing;
  }
}

const opening = '${{';
const closing = '}}';
const firstChar = /^[A-Za-z_]$/;
const nameChars = /^[A-Za-z0-9_.]+$/;

/** The original's reference rule: `ns.name`, one dot, both parts starting with a letter or _. */
function isValidReference(name: string): boolean {
  const dot = name.indexOf('.');

  if (dot <= 0 || dot === name.length - 1 || name.indexOf('.', dot + 1) !== -1) {
    return false;
  }

  return firstChar.test(name[0]) && firstChar.test(name[dot + 1]) && nameChars.test(name);
}

/** Python's repr of a list of strings, as the original prints missing references. */
function pythonList(items: string[]): string {
  return `[${items.map((item) => `'${item}'`).join(', ')}]`;
}

/**
 * Replaces every `${{ secrets.NAME }}` in `text` with the project's secret, with the
 * original's rules: `$$` stands for `$`, a malformed reference is an error, and so is any
 * reference that is not a known secret. Errors name the references, never a value.
 */
export function interpolateSecrets(
  text: string,
  secrets: Readonly<Record<string, string>>,
): string {
  const parts: string[] = [];
  const missing: string[] = [];
  let start = 0;

  while (start < text.length) {
    const dollar = text.indexOf('$', start);

    if (dollar === -1 || dollar === text.length - 1) {
      parts.push(text.slice(start));
      break;
    }

    if (text[dollar + 1] === '$') {
      parts.push(text.slice(start, dollar + 1));
      start = dollar + 2;
      continue;
    }

    const open = text.indexOf(opening, start);

    if (open === -1) {
      parts.push(text.slice(start));
      break;
    }

    parts.push(text.slice(start, open));
    const close = text.indexOf(closing, open);

    if (close === -1) {
      throw new SecretInterpolationError(`No pattern closing: ${text.slice(open)}`);
    }

    const name = text.slice(open + opening.length, close).trim();

    if (!isValidReference(name)) {
      throw new SecretInterpolationError(`Illegal reference name: ${name}`);
    }

    const key = name.slice('secrets.'.length);

    if (name.startsWith('secrets.') && Object.hasOwn(secrets, key)) {
      parts.push(secrets[key]);
    } else {
      missing.push(name);
    }

    start = close + closing.length;
  }

  if (missing.length > 0) {
    throw new SecretInterpolationError(
      `Failed to interpolate due to missing vars: ${pythonList(missing)}`,
      missing,
    );
  }

  return parts.join('');
}

/** The parts of a job spec that may reference secrets. */
export interface SecretBearingSpec {
  env: Readonly<Record<string, string>>;
  registryAuth?: { username: string; password: string } | null;
}

/**
 * A copy of the job's env (and registry credentials) with secrets filled in, as the original
 * does right before a job starts; throws a SecretInterpolationError naming what is missing.
 */
export function interpolateJobSecrets<T extends SecretBearingSpec>(
  spec: T,
  secrets: Readonly<Record<string, string>>,
): T {
  const env = Object.fromEntries(
    Object.entries(spec.env).map(([name, value]) => [name, interpolateSecrets(value, secrets)]),
  );
  const auth = spec.registryAuth;

  if (auth == null) {
    return { ...spec, env };
  }

  const registryAuth = {
    username: interpolateSecrets(auth.username, secrets),
    password: interpolateSecrets(auth.password, secrets),
  };

  return { ...spec, env, registryAuth };
}
