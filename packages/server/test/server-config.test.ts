import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  defaultServerConfigText,
  loadServerConfig,
  ServerConfigError,
  writeDefaultServerConfig,
} from '../src/index.js';

const fixtures = join(import.meta.dirname, '../../../../shared/fixtures/server');
let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dstack-config-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function problemsOf(path: string): Promise<string[]> {
  try {
    await loadServerConfig(path);
  } catch (error) {
    expect(error).toBeInstanceOf(ServerConfigError);
    expect((error as Error).message).toContain(path);
    return (error as ServerConfigError).problems;
  }

  throw new Error(`${path} was accepted`);
}

async function write(text: string): Promise<string> {
  const path = join(dir, 'config.yml');
  await writeFile(path, text);
  return path;
}

describe('config.yml', () => {
  it('accepts the AES fixture with its keys and permissions', async () => {
    const config = await loadServerConfig(join(fixtures, 'config-aes.yml'));

    expect(config?.projects).toEqual([{ name: 'main', backends: [{ type: 'local' }] }]);
    expect(config?.encryption?.keys.map((key) => key.type)).toEqual(['aes', 'aes', 'identity']);
    expect(config?.default_permissions).toEqual({ allow_non_admins_create_projects: false });
  });

  it('names the unknown key `backend` and where it is', async () => {
    expect(await problemsOf(join(fixtures, 'config-typo.yml'))).toEqual([
      'projects[0].backend: unknown key',
    ]);
  });

  it('names both problems of a bad AES key', async () => {
    const problems = await problemsOf(join(fixtures, 'config-bad-key.yml'));

    expect(problems).toHaveLength(2);
    expect(problems).toContain(
      'encryption.keys[0].name: the key name must be alphanumeric, got "key-1"',
    );
    expect(problems).toContain(
      'encryption.keys[0].secret: the secret must be base64 of exactly 32 bytes (got 5 bytes)',
    );
  });

  it('refuses two AES keys of the same name, naming both keys', async () => {
    const secret = (fill: number): string => Buffer.alloc(32, fill).toString('base64');
    const path = await write([
      'projects:',
      '  - name: main',
      'encryption:',
      '  keys:',
      `    - { type: aes, name: key1, secret: ${secret(1)} }`,
      `    - { type: aes, name: key2, secret: ${secret(2)} }`,
      '    - { type: identity }',
      `    - { type: aes, name: key1, secret: ${secret(3)} }`,
      '',
    ].join('\n'));

    expect(await problemsOf(path)).toEqual([
      'encryption.keys[3].name: the key name "key1" is already the name of encryption.keys[0]; ' +
        'each key needs a name of its own',
    ]);
  });

  it('reports wrong types, bad values, a missing key and YAML errors', async () => {
    expect(await problemsOf(await write('projects: main\n'))).toEqual([
      'projects: must be array, got "main"',
    ]);
    expect(await problemsOf(await write(
      'projects: [{name: main}]\ndefault_permissions: {allow_managers_manage_secrets: maybe}\n',
    ))).toEqual([
      'default_permissions.allow_managers_manage_secrets: must be boolean, got "maybe"',
    ]);
    expect(await problemsOf(await write(
      'projects: [{name: main}]\nencryption: {keys: [{type: rot13}]}\n',
    ))).toEqual([
      'encryption.keys[0].type: must be one of "aes", "identity", got "rot13"',
    ]);
    expect(await problemsOf(await write('encryption: {keys: []}\n'))).toEqual([
      'projects: required key is missing',
    ]);
    expect(await problemsOf(await write(''))).toHaveLength(1);
    expect((await problemsOf(await write('projects: [\n')))[0]).toMatch(/^YAML syntax/);
    expect((await problemsOf(await write(
      'projects: [{name: "bad name"}]\n',
    )))[0]).toMatch(/^projects\[0\]\.name: must match/);
  });

  it('returns null for a missing file and writes a default one without credentials', async () => {
    const path = join(dir, 'nested', 'config.yml');

    expect(await loadServerConfig(path)).toBeNull();

    const config = await writeDefaultServerConfig(path);
    expect(config).toEqual({
      projects: [{ name: 'main', backends: [{ type: 'local' }] }],
      encryption: { keys: [] },
    });
    expect(await readFile(path, 'utf8')).toBe(defaultServerConfigText);
    expect(await loadServerConfig(path)).toEqual(config);
    await expect(writeDefaultServerConfig(path)).rejects.toThrow(/EEXIST/);
  });
});
