import type { CoreContext } from '../context.js';
import {
  DecryptionError,
  ForbiddenError,
  ResourceNotExistsError,
  ServerClientError,
} from '../errors/server-errors.js';
import type { StateAccess } from '../ports/state-store.js';
import type { MemberRecord, ProjectRecord, SecretRecord, UserRecord } from '../records.js';
import { DuplicateKeyError } from '../stores/errors.js';
import { newId } from '../util/ids.js';
import { canManageSecrets } from './access.js';
import { eventTarget, recordEvent } from './events.js';

/** A secret on the wire; `value` is null in lists. */
export interface WireSecret {
  id: string;
  name: string;
  value: string | null;
}

/** Who manages secrets in which project (what a project route's guard found). */
export interface SecretsScope {
  user: Pick<UserRecord, 'id' | 'globalRole'>;
  project: Pick<ProjectRecord, 'id' | 'name'>;
  member: Pick<MemberRecord, 'projectRole'> | null;
}

const secretNamePattern = '^[A-Za-z0-9-_]{1,200}$';
const secretNameRegex = new RegExp(secretNamePattern);

/** The longest secret value the original accepts, in characters. */
export const secretValueMaxLength = 5000;

function checkCanManageSecrets(ctx: CoreContext, scope: SecretsScope): void {
  const role = scope.member?.projectRole ?? null;

  if (!canManageSecrets(scope.user, role, ctx.settings.defaultPermissions)) {
    throw new ForbiddenError();
  }
}

function checkSecret(name: string, value: string): void {
  if (!secretNameRegex.test(name)) {
    throw new ServerClientError(`Secret name should match regex '${secretNamePattern}`);
  }

  // Python counts code points, not UTF-16 units.
  if ([...value].length > secretValueMaxLength) {
    throw new ServerClientError(`Secret value length must not exceed ${secretValueMaxLength}`);
  }
}

function decryptSecret(ctx: CoreContext, secret: SecretRecord): string {
  try {
    return ctx.cipher.decrypt(secret.value);
  } catch (error) {
    if (error instanceof DecryptionError) {
      ctx.logger.warn(
        { secretName: secret.name, keyName: error.keyName },
        'secret cannot be decrypted',
      );
      throw new ServerClientError(
        `Secret ${secret.name} cannot be decrypted: it was written with ${error.keyType} key`
          + ` '${error.keyName}', which is not configured`,
      );
    }

    throw error;
  }
}

async function findSecret(
  access: StateAccess,
  projectId: string,
  name: string,
): Promise<SecretRecord | undefined> {
  return access.findOne('secrets', { where: { projectId, name } });
}

/** The project's secrets, newest first, without values. */
export async function listSecrets(ctx: CoreContext, scope: SecretsScope): Promise<WireSecret[]> {
  checkCanManageSecrets(ctx, scope);
  const secrets = await ctx.store.find('secrets', {
    where: { projectId: scope.project.id },
    orderBy: [['createdAt', 'desc'], ['id', 'desc']],
  });

  return secrets.map((secret) => ({ id: secret.id, name: secret.name, value: null }));
}

/** One secret with its value; 400 `resource_not_exists` when there is none of that name. */
export async function getSecret(
  ctx: CoreContext,
  scope: SecretsScope,
  name: string,
): Promise<WireSecret> {
  checkCanManageSecrets(ctx, scope);
  const secret = await findSecret(ctx.store, scope.project.id, name);

  if (secret === undefined) {
    throw new ResourceNotExistsError();
  }

  return { id: secret.id, name: secret.name, value: decryptSecret(ctx, secret) };
}

async function writeSecret(
  ctx: CoreContext,
  scope: SecretsScope,
  name: string,
  value: string,
): Promise<SecretRecord> {
  return ctx.store.transaction(async (tx) => {
    const existing = await findSecret(tx, scope.project.id, name);
    const now = ctx.now();

    if (existing === undefined) {
      const secret: SecretRecord = {
        id: newId(),
        projectId: scope.project.id,
        name,
        value: ctx.cipher.encrypt(value),
        createdAt: now,
        updatedAt: now,
      };
      await tx.insert('secrets', secret);
      await recordEvent(ctx, tx, 'Secret created', scope.user, [eventTarget.secret(secret)]);

      return secret;
    }

    const patch = { value: ctx.cipher.encrypt(value), updatedAt: now };
    await tx.update('secrets', { id: existing.id }, patch);
    await recordEvent(ctx, tx, 'Secret updated', scope.user, [eventTarget.secret(existing)]);

    return { ...existing, ...patch };
  });
}

/**
 * Creates the secret or replaces its value (upsert), encrypted with the current key. The
 * name must match `^[A-Za-z0-9-_]{1,200}$` and the value be at most 5000 characters.
 */
export async function createOrUpdateSecret(
  ctx: CoreContext,
  scope: SecretsScope,
  name: string,
  value: string,
): Promise<WireSecret> {
  checkCanManageSecrets(ctx, scope);
  checkSecret(name, value);
  let secret: SecretRecord;

  try {
    secret = await writeSecret(ctx, scope, name, value);
  } catch (error) {
    // Another request created the same name in between: this one becomes an update.
    if (!(error instanceof DuplicateKeyError)) {
      throw error;
    }

    secret = await writeSecret(ctx, scope, name, value);
  }

  ctx.logger.info({ projectName: scope.project.name, secretName: name }, 'secret saved');

  return { id: secret.id, name: secret.name, value };
}

/** Deletes the named secrets, all or none: 400 "Secrets not found: a, b" for missing names. */
export async function deleteSecrets(
  ctx: CoreContext,
  scope: SecretsScope,
  names: readonly string[],
): Promise<void> {
  checkCanManageSecrets(ctx, scope);
  const unique = [...new Set(names)];

  await ctx.store.transaction(async (tx) => {
    const found = await tx.find('secrets', {
      where: { projectId: scope.project.id, name: { in: unique } },
    });
    const foundNames = new Set(found.map((secret) => secret.name));
    const missing = unique.filter((name) => !foundNames.has(name));

    if (missing.length > 0) {
      throw new ResourceNotExistsError(`Secrets not found: ${missing.join(', ')}`);
    }

    await tx.delete('secrets', { id: { in: found.map((secret) => secret.id) } });
    for (const secret of found) {
      await recordEvent(ctx, tx, 'Secret deleted', scope.user, [eventTarget.secret(secret)]);
    }
  });

  ctx.logger.info({ projectName: scope.project.name, secretNames: unique }, 'secrets deleted');
}

/**
 * Every secret of the project by name, decrypted, for jobs about to start. Throws when one
 * cannot be decrypted (the message names the secret and its key, never a value).
 */
export async function getProjectSecrets(
  ctx: CoreContext,
  projectId: string,
  access: StateAccess = ctx.store,
): Promise<Record<string, string>> {
  const secrets = await access.find('secrets', { where: { projectId } });

  return Object.fromEntries(secrets.map((secret) => [secret.name, decryptSecret(ctx, secret)]));
}
