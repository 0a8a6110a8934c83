import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { beforeEach, describe, expect, it } from 'vitest';
import {
  createCipher,
  createOrUpdateSecret,
  deleteSecrets,
  ForbiddenError,
  getProjectSecrets,
  getSecret,
  interpolateJobSecrets,
  interpolateSecrets,
  listSecrets,
  ResourceNotExistsError,
  SecretInterpolationError,
  ServerClientError,
} from '@dstack/core';
import type { ProjectRecord, SecretsScope, UserRecord } from '@dstack/core';
import { parse } from 'yaml';
import { addProject, addUser, createTestContext } from '../crypto/test-context.js';
import type { TestContext } from '../crypto/test-context.js';

const sharedFixtures = join(import.meta.dirname, '../../../../../shared/fixtures');

let ctx: TestContext;
let admin: UserRecord;
let project: ProjectRecord;
let scope: SecretsScope;

beforeEach(async () => {
  ctx = createTestContext();
  admin = await addUser(ctx, 'admin', 'admin');
  project = await addProject(ctx, 'main', admin);
  scope = { user: admin, project, member: null };
});

describe('secrets', () => {
  it('creates, lists newest first without values, and gets with the value', async () => {
    const first = await createOrUpdateSecret(ctx, scope, 'first', 'value-1');
    const second = await createOrUpdateSecret(ctx, scope, 'second', 'value-2');

    expect(first).toEqual({ id: first.id, name: 'first', value: 'value-1' });
    expect(await listSecrets(ctx, scope)).toEqual([
      { id: second.id, name: 'second', value: null },
      { id: first.id, name: 'first', value: null },
    ]);
    expect(await getSecret(ctx, scope, 'first')).toEqual(first);
  });

  it('stores the value encrypted with the first key', async () => {
    await createOrUpdateSecret(ctx, scope, 'api_key', 'sk-plain-value');
    const [row] = await ctx.store.find('secrets');

    expect(row.value.startsWith('enc:aes:key2:')).toBe(true);
    expect(row.value).not.toContain('sk-plain-value');
  });

  it('upserts: the same name keeps its id and takes the new value', async () => {
    const created = await createOrUpdateSecret(ctx, scope, 'token', 'old');
    const updated = await createOrUpdateSecret(ctx, scope, 'token', 'new');

    expect(updated).toEqual({ id: created.id, name: 'token', value: 'new' });
    expect(await ctx.store.count('secrets')).toBe(1);
    expect((await getSecret(ctx, scope, 'token')).value).toBe('new');
  });

  it('keeps secrets of other projects apart', async () => {
    const other = await addProject(ctx, 'other', admin);
    const otherScope = { ...scope, project: other };
    await createOrUpdateSecret(ctx, scope, 'shared', 'main-value');
    await createOrUpdateSecret(ctx, otherScope, 'shared', 'other-value');

    expect((await getSecret(ctx, scope, 'shared')).value).toBe('main-value');
    expect((await getSecret(ctx, otherScope, 'shared')).value).toBe('other-value');
  });

  it('checks the name and the length of the value', async () => {
    const bad = createOrUpdateSecret(ctx, scope, 'bad name', 'v');

    await expect(bad).rejects.toThrow(ServerClientError);
    await expect(createOrUpdateSecret(ctx, scope, 'bad name', 'v')).rejects.toThrow(
      "Secret name should match regex '^[A-Za-z0-9-_]{1,200}$",
    );
    await expect(createOrUpdateSecret(ctx, scope, 'x'.repeat(201), 'v')).rejects.toThrow(
      /should match regex/,
    );
    await expect(createOrUpdateSecret(ctx, scope, 'long', 'v'.repeat(5001))).rejects.toThrow(
      'Secret value length must not exceed 5000',
    );
    await createOrUpdateSecret(ctx, scope, 'A-b_9', 'v'.repeat(5000));
    expect(await ctx.store.count('secrets')).toBe(1);
  });

  it('fails to get a missing secret with resource_not_exists', async () => {
    await expect(getSecret(ctx, scope, 'nope')).rejects.toThrow(ResourceNotExistsError);
  });

  it('deletes all or none, naming every missing secret', async () => {
    await createOrUpdateSecret(ctx, scope, 'a', '1');
    await createOrUpdateSecret(ctx, scope, 'b', '2');
    const failed = deleteSecrets(ctx, scope, ['a', 'x', 'y']);

    await expect(failed).rejects.toThrow(ResourceNotExistsError);
    await expect(deleteSecrets(ctx, scope, ['a', 'x', 'y'])).rejects.toThrow(
      'Secrets not found: x, y',
    );
    expect(await ctx.store.count('secrets')).toBe(2);

    await deleteSecrets(ctx, scope, ['a', 'b']);
    expect(await ctx.store.count('secrets')).toBe(0);
  });

  it('lets project admins in, managers only when config.yml allows it, users never', async () => {
    const manager = await addUser(ctx, 'manager');
    const user = await addUser(ctx, 'someone');
    const projectAdmin = await addUser(ctx, 'padmin');
    const asManager = { user: manager, project, member: { projectRole: 'manager' as const } };
    const asUser = { user, project, member: { projectRole: 'user' as const } };
    const asAdmin = { user: projectAdmin, project, member: { projectRole: 'admin' as const } };

    await expect(listSecrets(ctx, asManager)).rejects.toThrow(ForbiddenError);
    await expect(createOrUpdateSecret(ctx, asUser, 'a', 'b')).rejects.toThrow(ForbiddenError);
    await expect(listSecrets(ctx, asAdmin)).resolves.toEqual([]);

    ctx.settings.defaultPermissions.allowManagersManageSecrets = true;
    await createOrUpdateSecret(ctx, asManager, 'by_manager', 'v');
    expect(await listSecrets(ctx, asManager)).toHaveLength(1);
    await expect(getSecret(ctx, asUser, 'by_manager')).rejects.toThrow(ForbiddenError);
  });

  it('reads values of an older key, and names the key of one it cannot read', async () => {
    const [key2, key1] = [
      { type: 'aes', name: 'key2', secret: Buffer.alloc(32, 2).toString('base64') },
      { type: 'aes', name: 'key1', secret: Buffer.alloc(32, 1).toString('base64') },
    ] as const;
    const old = createTestContext({ keys: [key1] });
    old.store = ctx.store;
    await createOrUpdateSecret(old, scope, 'legacy', 'legacy-value');

    expect((await getSecret(ctx, scope, 'legacy')).value).toBe('legacy-value');

    ctx.cipher = createCipher([key2]);
    const failure = getSecret(ctx, scope, 'legacy');

    await expect(failure).rejects.toThrow(ServerClientError);
    await expect(getSecret(ctx, scope, 'legacy')).rejects.toThrow(/legacy.*aes key 'key1'/);
    await expect(getProjectSecrets(ctx, project.id)).rejects.toThrow(/key1/);
    expect(ctx.logger.lines.join('\n')).not.toContain('legacy-value');
  });

  it('never logs a value', async () => {
    await createOrUpdateSecret(ctx, scope, 'hidden', 'very-secret-value');
    await createOrUpdateSecret(ctx, scope, 'hidden', 'another-secret-value');
    await getSecret(ctx, scope, 'hidden');
    await deleteSecrets(ctx, scope, ['hidden']);
    const logged = ctx.logger.lines.join('\n');

    expect(logged).toContain('hidden');
    expect(logged).not.toContain('secret-value');
  });
});

describe('interpolateSecrets', () => {
  const secrets = { api_key: 'sk-123', token: 'tok:en' };

  it('fills in secrets and keeps the rest', () => {
    expect(interpolateSecrets('${{ secrets.api_key }}', secrets)).toBe('sk-123');
    expect(interpolateSecrets('Bearer ${{secrets.token}}!', secrets)).toBe('Bearer tok:en!');
    expect(interpolateSecrets('$$HOME and ${{ secrets.api_key }}', secrets)).toBe(
      '$HOME and sk-123',
    );
    // As in the original: past a lone `$` with no reference after it, the text stays as it is.
    expect(interpolateSecrets('$HOME and $$ and plain', secrets)).toBe('$HOME and $$ and plain');
    expect(interpolateSecrets('a ${{ secrets.api_key }} b ${{ secrets.token }}', secrets)).toBe(
      'a sk-123 b tok:en',
    );
  });

  it('names every missing secret and never a value', () => {
    const text = '${{ secrets.api_key }} ${{ secrets.missing }} ${{ env.other }}';

    expect(() => interpolateSecrets(text, secrets)).toThrow(SecretInterpolationError);

    try {
      interpolateSecrets(text, secrets);
    } catch (error) {
      const failure = error as SecretInterpolationError;
      expect(failure.message).toBe(
        "Failed to interpolate due to missing vars: ['secrets.missing', 'env.other']",
      );
      expect(failure.missing).toEqual(['secrets.missing', 'env.other']);
      expect(failure.message).not.toContain('sk-123');
      expect(failure.body()).toEqual({ detail: [{ msg: failure.message, code: 'error' }] });
    }
  });

  it('rejects malformed references', () => {
    expect(() => interpolateSecrets('${{ secrets.api_key', secrets)).toThrow(
      'No pattern closing: ${{ secrets.api_key',
    );
    expect(() => interpolateSecrets('${{ secrets.my-key }}', secrets)).toThrow(
      'Illegal reference name: secrets.my-key',
    );
    expect(() => interpolateSecrets('${{ api_key }}', secrets)).toThrow(/Illegal reference/);
  });

  it('fills a job spec env and registry credentials', () => {
    const spec = {
      env: { A: '${{ secrets.api_key }}', B: 'plain' },
      registryAuth: { username: 'me', password: '${{ secrets.token }}' },
      commands: ['echo ${{ secrets.api_key }}'],
    };

    expect(interpolateJobSecrets(spec, secrets)).toEqual({
      env: { A: 'sk-123', B: 'plain' },
      registryAuth: { username: 'me', password: 'tok:en' },
      commands: ['echo ${{ secrets.api_key }}'],
    });
    expect(spec.env.A).toBe('${{ secrets.api_key }}');
  });
});

describe('fixtures/configs/task-secret.dstack.yml at the service level', () => {
  const configuration = parse(
    readFileSync(join(sharedFixtures, 'configs/task-secret.dstack.yml'), 'utf8'),
  ) as { env: string[]; commands: string[] };
  const env = Object.fromEntries(
    configuration.env.map((line) => {
      const equals = line.indexOf('=');

      return [line.slice(0, equals), line.slice(equals + 1)];
    }),
  );

  it('gets the project secret api_key into the env', async () => {
    await createOrUpdateSecret(ctx, scope, 'api_key', 'sk-fixture-value');
    const secrets = await getProjectSecrets(ctx, project.id);

    expect(interpolateJobSecrets({ env }, secrets).env).toEqual({ API_KEY: 'sk-fixture-value' });
    expect(configuration.commands.join('\n')).not.toContain('${{');
  });

  it('fails clearly, naming api_key, when the project has no such secret', async () => {
    await createOrUpdateSecret(ctx, scope, 'other', 'sk-other-value');
    const secrets = await getProjectSecrets(ctx, project.id);

    expect(() => interpolateJobSecrets({ env }, secrets)).toThrow(
      "Failed to interpolate due to missing vars: ['secrets.api_key']",
    );
  });
});
