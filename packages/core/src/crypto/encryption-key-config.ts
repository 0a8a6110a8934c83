/** An AES-256-GCM key of `encryption.keys`: a name and a base64 secret of 32 bytes. */
export interface AesEncryptionKeyConfig {
  type: 'aes';
  /** Alphanumeric; written into every value the key encrypts. */
  name: string;
  /** Standard base64 of exactly 32 bytes. */
  secret: string;
}

/** The identity key: values are stored as they are, behind the `enc:identity:noname:` prefix. */
export interface IdentityEncryptionKeyConfig {
  type: 'identity';
}

/** One entry of config.yml's `encryption.keys`. */
export type EncryptionKeyConfig = AesEncryptionKeyConfig | IdentityEncryptionKeyConfig;

/** One thing wrong with an `encryption.keys` entry, with the path of the offending field. */
export interface EncryptionKeyProblem {
  path: (string | number)[];
  message: string;
}

const aesKeyBytes = 32;
const strictBase64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
// Python's str.isalnum: letters and digits of any script, at least one.
const alphanumeric = /^[\p{L}\p{N}]+$/u;

/**
 * Decodes standard base64 as Python's `b64decode(validate=True)` does: only the standard
 * alphabet and correct padding; undefined when invalid.
 */
export function decodeStrictBase64(text: string): Buffer | undefined {
  return strictBase64.test(text) ? Buffer.from(text, 'base64') : undefined;
}

function describeKey(entry: Record<string, unknown>, index: number): string {
  return typeof entry.name === 'string' ? `key '${entry.name}'` : `key #${index + 1}`;
}

function checkAesKey(
  entry: Record<string, unknown>,
  index: number,
  path: (string | number)[],
): EncryptionKeyProblem[] {
  const problems: EncryptionKeyProblem[] = [];
  const key = describeKey(entry, index);

  if (typeof entry.name !== 'string') {
    problems.push({ path: [...path, 'name'], message: `${key}: name is required` });
  } else if (!alphanumeric.test(entry.name)) {
    problems.push({
      path: [...path, 'name'],
      message: `${key}: the name must be alphanumeric (letters and digits only)`,
    });
  }

  if (typeof entry.secret !== 'string') {
    problems.push({ path: [...path, 'secret'], message: `${key}: secret is required` });
  } else {
    const bytes = decodeStrictBase64(entry.secret);

    // The message never repeats the secret itself.
    if (bytes === undefined) {
      problems.push({
        path: [...path, 'secret'],
        message: `${key}: the secret is not valid base64`,
      });
    } else if (bytes.length !== aesKeyBytes) {
      problems.push({
        path: [...path, 'secret'],
        message: `${key}: the secret must decode to ${aesKeyBytes} bytes, not ${bytes.length}`,
      });
    }
  }

  for (const field of Object.keys(entry)) {
    if (!['type', 'name', 'secret'].includes(field)) {
      problems.push({ path: [...path, field], message: `${key}: unknown field '${field}'` });
    }
  }

  return problems;
}

/**
 * Every problem in a list of `encryption.keys` entries, each with its path under `basePath`
 * and a message naming the key. An empty result means `createCipher` accepts the list.
 */
export function validateEncryptionKeys(
  keys: unknown,
  basePath: (string | number)[] = ['encryption', 'keys'],
): EncryptionKeyProblem[] {
  if (!Array.isArray(keys)) {
    return [{ path: basePath, message: 'encryption keys must be a list' }];
  }

  return [...keys.flatMap((entry: unknown, index): EncryptionKeyProblem[] => {
    const path = [...basePath, index];

    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      return [{ path, message: `key #${index + 1}: must be an object with a type` }];
    }

    const record = entry as Record<string, unknown>;

    if (record.type === 'aes') {
      return checkAesKey(record, index, path);
    }

    if (record.type === 'identity') {
      return Object.keys(record)
        .filter((field) => field !== 'type')
        .map((field) => ({
          path: [...path, field],
          message: `identity key #${index + 1}: unknown field '${field}'`,
        }));
    }

    return [{
      path: [...path, 'type'],
      message: `${describeKey(record, index)}: type must be 'aes' or 'identity'`,
    }];
  }), ...duplicateNames(keys, basePath)];
}

/** An `aes` key whose name an earlier key of the list already has. */
export interface DuplicateKeyName {
  index: number;
  /** The index of the first key with that name. */
  first: number;
  name: string;
}

/**
 * The `aes` keys of a raw key list that repeat an earlier key's name: values carry only the
 * key's name, so two keys of one name could not be told apart.
 */
export function duplicateKeyNames(keys: readonly unknown[]): DuplicateKeyName[] {
  const firstIndex = new Map<string, number>();
  const duplicates: DuplicateKeyName[] = [];

  keys.forEach((entry, index) => {
    const { type, name } = (entry ?? {}) as { type?: unknown; name?: unknown };

    if (type !== 'aes' || typeof name !== 'string') {
      return;
    }

    const first = firstIndex.get(name);

    if (first === undefined) {
      firstIndex.set(name, index);
    } else {
      duplicates.push({ index, first, name });
    }
  });

  return duplicates;
}

function duplicateNames(keys: unknown[], basePath: (string | number)[]): EncryptionKeyProblem[] {
  return duplicateKeyNames(keys).map(({ index, first, name }) => ({
    path: [...basePath, index, 'name'],
    message: `key '${name}': the name is already used by ` +
      `${[...basePath, first].join('.')}; each key needs a name of its own`,
  }));
}

/** Thrown by `createCipher` for a key list that `validateEncryptionKeys` rejects. */
export class EncryptionKeyConfigError extends Error {
  readonly problems: EncryptionKeyProblem[];

  constructor(problems: EncryptionKeyProblem[]) {
    const lines = problems.map((problem) => `${problem.path.join('.')}: ${problem.message}`);
    super(`Invalid encryption keys:\n${lines.join('\n')}`);
    this.name = 'EncryptionKeyConfigError';
    this.problems = problems;
  }
}
