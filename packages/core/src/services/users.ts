import { generateKeyPair, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import type { CoreContext } from '../context.js';
import { toUser, toUserWithCreds } from '../domain/user.js';
import type { User, UserWithCreds, UsersInfoList } from '../domain/user.js';
import {
  AccessDeniedError,
  ResourceExistsError,
  ResourceNotExistsError,
  ServerClientError,
} from '../errors/server-errors.js';
import type { StateAccess } from '../ports/state-store.js';
import type { UserRecord } from '../records.js';
import { newId, sha256Hex } from '../util/ids.js';
import { isGlobalAdmin } from './access.js';
import { eventTarget, recordEvent } from './events.js';
import type { GlobalRole } from './access.js';

const generateKeyPairAsync = promisify(generateKeyPair);

/** The user the server creates at first start; it cannot be deleted. */
export const adminUsername = 'admin';

const usernamePattern = /^[a-zA-Z0-9-_]{1,60}$/;

/** An RSA key pair: the public half in OpenSSH form, the private half as PEM. */
export interface SshKeyPair {
  publicKey: string;
  privateKey: string;
}

function sshString(data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  return Buffer.concat([length, data]);
}

function sshMpint(base64url: string): Buffer {
  let bytes = Buffer.from(base64url, 'base64url');

  // A set high bit would make the integer negative in SSH's encoding.
  if (bytes.length > 0 && ((bytes[0] as number) & 0x80) !== 0) {
    bytes = Buffer.concat([Buffer.from([0]), bytes]);
  }

  return sshString(bytes);
}

/** A new 2048-bit RSA key pair; `comment` ends the public key line. */
export async function generateSshKeyPair(comment: string): Promise<SshKeyPair> {
  const { publicKey, privateKey } = await generateKeyPairAsync('rsa', { modulusLength: 2048 });
  const jwk = publicKey.export({ format: 'jwk' });
  const blob = Buffer.concat([
    sshString(Buffer.from('ssh-rsa')),
    sshMpint(jwk.e as string),
    sshMpint(jwk.n as string),
  ]);

  return {
    publicKey: `ssh-rsa ${blob.toString('base64')} ${comment}\n`,
    privateKey: privateKey.export({ type: 'pkcs1', format: 'pem' }) as string,
  };
}

/** The name a soft-deleted user or project gets, freeing its old one. */
export function deletedName(nowMillis: number): string {
  return `_deleted_${Math.floor(nowMillis / 1000)}_${randomBytes(8).toString('hex')}`;
}

/**
 * The active, non-deleted user a bearer token belongs to, or null. The token is found by its
 * SHA-256 and then compared with the decrypted stored one in constant time.
 */
export async function authenticateToken(
  ctx: CoreContext,
  token: string,
): Promise<UserRecord | null> {
  const user = await ctx.store.findOne('users', {
    where: { tokenHash: sha256Hex(token), deleted: false },
  });

  if (user === undefined || !user.active) {
    return null;
  }

  let stored: Buffer;

  try {
    stored = Buffer.from(ctx.cipher.decrypt(user.token), 'utf8');
  } catch (error) {
    ctx.logger.error({ userId: user.id, err: error }, 'user token cannot be decrypted');
    return null;
  }

  const given = Buffer.from(token, 'utf8');
  return stored.length === given.length && timingSafeEqual(stored, given) ? user : null;
}

/** The non-deleted user with this name (case-sensitive unless `ignoreCase`), or undefined. */
export async function findUserByName(
  access: StateAccess,
  name: string,
  options: { ignoreCase?: boolean } = {},
): Promise<UserRecord | undefined> {
  const exact = await access.findOne('users', { where: { name, deleted: false } });

  if (exact !== undefined || !options.ignoreCase) {
    return exact;
  }

  const lower = name.toLowerCase();
  const users = await access.find('users', { where: { deleted: false } });
  return users.find((user) => user.name.toLowerCase() === lower);
}

/** What `users/create` takes. */
export interface CreateUserInput {
  username: string;
  globalRole: GlobalRole;
  email?: string | null;
  active?: boolean;
  /** Who creates the user, for its event; left out when the server itself does. */
  actor?: Pick<UserRecord, 'id'> | null;
  /** The token to give the user; a random UUID when left out. */
  token?: string;
}

/**
 * Creates a user with a token and an SSH key pair, both stored encrypted. A bad name is a
 * 400; a name taken in any letter case is 400 `resource_exists`.
 */
export async function createUser(ctx: CoreContext, input: CreateUserInput): Promise<UserRecord> {
  if (!usernamePattern.test(input.username)) {
    throw new ServerClientError("Username should match regex '^[a-zA-Z0-9-_]{1,60}$'");
  }

  const token = input.token ?? randomUUID();
  const keys = await generateSshKeyPair(input.username);

  return ctx.store.transaction(async (tx) => {
    if ((await findUserByName(tx, input.username, { ignoreCase: true })) !== undefined) {
      throw new ResourceExistsError();
    }

    const user: UserRecord = {
      id: newId(),
      name: input.username,
      createdAt: ctx.now(),
      token: ctx.cipher.encrypt(token),
      tokenHash: sha256Hex(token),
      globalRole: input.globalRole,
      email: input.email ?? null,
      active: input.active ?? true,
      deleted: false,
      originalName: null,
      sshPublicKey: keys.publicKey,
      sshPrivateKey: ctx.cipher.encrypt(keys.privateKey),
    };

    await tx.insert('users', user);
    await recordEvent(ctx, tx, 'User created', input.actor ?? null, [eventTarget.user(user)]);
    ctx.logger.info({ username: user.name, globalRole: user.globalRole }, 'user created');
    return user;
  });
}

/** What `users/update` takes: a full replacement of the role, email and active flag. */
export interface UpdateUserInput {
  username: string;
  globalRole: GlobalRole;
  email: string | null;
  active: boolean;
}

/** Replaces a user's role, email and active flag; 400 `resource_not_exists` when unknown. */
export async function updateUser(ctx: CoreContext, input: UpdateUserInput): Promise<UserRecord> {
  return ctx.store.transaction(async (tx) => {
    const user = await findUserByName(tx, input.username);

    if (user === undefined) {
      throw new ResourceNotExistsError();
    }

    const patch = { globalRole: input.globalRole, email: input.email, active: input.active };
    await tx.update('users', { id: user.id }, patch);
    return { ...user, ...patch };
  });
}

/** Keyset pagination parameters of the list endpoints (§5). */
export interface KeysetQuery {
  prevCreatedAt?: number | null;
  prevId?: string | null;
  limit: number;
  ascending: boolean;
}

/**
 * One page of items ordered by (time, id): time descending then id ascending by default, the
 * reverse with `ascending`; the page starts after the given (time, id).
 */
export function keysetPage<T>(
  items: readonly T[],
  query: KeysetQuery,
  timeOf: (item: T) => number,
  idOf: (item: T) => string,
): T[] {
  const direction = query.ascending ? 1 : -1;
  const sorted = [...items].sort((a, b) => {
    const byTime = (timeOf(a) - timeOf(b)) * direction;

    if (byTime !== 0) {
      return byTime;
    }

    // Ties go by id ascending when times descend, and the other way round.
    return (idOf(a) < idOf(b) ? 1 : idOf(a) > idOf(b) ? -1 : 0) * direction;
  });
  const { prevCreatedAt, prevId } = query;
  const after = sorted.filter((item) => {
    if (prevCreatedAt === null || prevCreatedAt === undefined) {
      return true;
    }

    const delta = (timeOf(item) - prevCreatedAt) * direction;

    if (delta !== 0 || prevId === null || prevId === undefined) {
      return delta > 0;
    }

    return query.ascending ? idOf(item) < prevId : idOf(item) > prevId;
  });

  return after.slice(0, query.limit);
}

/** What `users/list` takes. */
export interface ListUsersQuery extends KeysetQuery {
  returnTotalCount: boolean;
  namePattern?: string | null;
}

/**
 * Users the actor may see (all for a global admin, only itself otherwise), one page of them,
 * with the total count when asked for.
 */
export async function listUsers(
  ctx: CoreContext,
  actor: UserRecord,
  query: ListUsersQuery,
): Promise<User[] | UsersInfoList> {
  let users = isGlobalAdmin(actor)
    ? await ctx.store.find('users', { where: { deleted: false } })
    : [actor];

  if (query.namePattern) {
    const needle = query.namePattern.toLowerCase();
    users = users.filter((user) => user.name.toLowerCase().includes(needle));
  }

  const page = keysetPage(users, query, (user) => user.createdAt, (user) => user.id);
  const wire = page.map((user) => toUser(user, ctx.settings.defaultPermissions));

  return query.returnTotalCount ? { total_count: users.length, users: wire } : wire;
}

/** The wire form of a user with its creds. */
export function userWithCreds(ctx: CoreContext, user: UserRecord): UserWithCreds {
  return toUserWithCreds(user, ctx.settings.defaultPermissions, ctx.cipher);
}

/** The wire form of a user. */
export function userToWire(ctx: CoreContext, user: UserRecord): User {
  return toUser(user, ctx.settings.defaultPermissions);
}

/** The actor with its creds, after giving it an SSH key pair if it has none. */
export async function getMyUser(ctx: CoreContext, actor: UserRecord): Promise<UserWithCreds> {
  if (actor.sshPublicKey !== null && actor.sshPrivateKey !== null) {
    return userWithCreds(ctx, actor);
  }

  const keys = await generateSshKeyPair(actor.name);
  const patch = {
    sshPublicKey: keys.publicKey,
    sshPrivateKey: ctx.cipher.encrypt(keys.privateKey),
  };
  await ctx.store.update('users', { id: actor.id }, patch);
  return userWithCreds(ctx, { ...actor, ...patch });
}

/**
 * A user with creds, for itself or a global admin; another user's name or an unknown one is
 * 400 `resource_not_exists` (the original does not say 403 here).
 */
export async function getUserWithCreds(
  ctx: CoreContext,
  actor: UserRecord,
  username: string,
): Promise<UserWithCreds> {
  const user = await findUserByName(ctx.store, username);

  if (user === undefined || (!isGlobalAdmin(actor) && user.id !== actor.id)) {
    throw new ResourceNotExistsError();
  }

  return userWithCreds(ctx, user);
}

async function changeOwnOrAny(
  ctx: CoreContext,
  actor: UserRecord,
  username: string,
  change: (user: UserRecord) => Promise<Partial<UserRecord>>,
): Promise<UserWithCreds> {
  if (!isGlobalAdmin(actor) && actor.name !== username) {
    throw new AccessDeniedError();
  }

  const user = await findUserByName(ctx.store, username);

  if (user === undefined) {
    throw new ResourceNotExistsError();
  }

  const patch = await change(user);
  await ctx.store.update('users', { id: user.id }, patch);
  return userWithCreds(ctx, { ...user, ...patch });
}

/** Gives a user a new UUID token; the old one stops working at once. */
export async function refreshUserToken(
  ctx: CoreContext,
  actor: UserRecord,
  username: string,
): Promise<UserWithCreds> {
  return changeOwnOrAny(ctx, actor, username, async () => {
    const token = randomUUID();
    return { token: ctx.cipher.encrypt(token), tokenHash: sha256Hex(token) };
  });
}

/** Gives a user a new SSH key pair. */
export async function refreshUserSshKey(
  ctx: CoreContext,
  actor: UserRecord,
  username: string,
): Promise<UserWithCreds> {
  return changeOwnOrAny(ctx, actor, username, async (user) => {
    const keys = await generateSshKeyPair(user.name);
    return { sshPublicKey: keys.publicKey, sshPrivateKey: ctx.cipher.encrypt(keys.privateKey) };
  });
}

/**
 * Soft-deletes users (renamed, deactivated) and drops their memberships; all or nothing.
 * Owned projects stay. `admin` cannot be deleted.
 */
export async function deleteUsers(
  ctx: CoreContext,
  usernames: readonly string[],
  actor: Pick<UserRecord, 'id'> | null = null,
): Promise<void> {
  if (usernames.includes(adminUsername)) {
    throw new ServerClientError(`User '${adminUsername}' cannot be deleted`);
  }

  await ctx.store.transaction(async (tx) => {
    const users = await tx.find('users', { where: { name: { in: usernames }, deleted: false } });

    if (users.length !== usernames.length) {
      throw new ServerClientError('Failed to delete non-existent users');
    }

    for (const user of users) {
      await tx.update(
        'users',
        { id: user.id },
        { deleted: true, active: false, originalName: user.name, name: deletedName(ctx.now()) },
      );
      await recordEvent(ctx, tx, 'User deleted', actor, [eventTarget.user(user)]);
    }

    await tx.delete('members', { userId: { in: users.map((user) => user.id) } });
  });

  ctx.logger.info({ count: usernames.length }, 'users deleted');
}

/**
 * Finds `admin` or creates it as a global admin. Only a new admin gets `token` (else a random
 * UUID); an existing one keeps its token.
 */
export async function getOrCreateAdminUser(
  ctx: CoreContext,
  token?: string,
): Promise<{ user: UserRecord; created: boolean }> {
  const existing = await findUserByName(ctx.store, adminUsername);

  if (existing !== undefined) {
    return { user: existing, created: false };
  }

  const user = await createUser(ctx, {
    username: adminUsername,
    globalRole: 'admin',
    ...(token === undefined ? {} : { token }),
  });
  return { user, created: true };
}
