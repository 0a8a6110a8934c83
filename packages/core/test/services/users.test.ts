import { describe, expect, it } from 'vitest';
import {
  authenticateToken,
  createCipher,
  createMemoryLogStore,
  createMemoryStateStore,
  createUser,
  defaultPermissions,
  getOrCreateAdminUser,
  keysetPage,
  listUsers,
  silentLogger,
} from '@dstack/core';
import type { CoreContext } from '@dstack/core';

function context(now = () => Date.now()): CoreContext {
  return {
    store: createMemoryStateStore(),
    logs: createMemoryLogStore(),
    cipher: createCipher([
      { type: 'aes', name: 'k1', secret: Buffer.alloc(32, 7).toString('base64') },
    ]),
    providers: new Map(),
    logger: silentLogger,
    settings: {
      serverDir: '/nonexistent',
      serverVersion: null,
      defaultPermissions: { ...defaultPermissions },
      userProjectQuota: 10,
    },
    now,
  };
}

describe('users service', () => {
  it('uses the given admin token only when it creates the admin', async () => {
    const ctx = context();
    const first = await getOrCreateAdminUser(ctx, 'first-token');
    const second = await getOrCreateAdminUser(ctx, 'second-token');

    expect(first.created).toBe(true);
    expect(second.created).toBe(false);
    expect(second.user.id).toBe(first.user.id);
    expect(ctx.cipher.decrypt(second.user.token)).toBe('first-token');
    expect(second.user.token.startsWith('enc:aes:k1:')).toBe(true);
    expect((await authenticateToken(ctx, 'first-token'))?.name).toBe('admin');
    expect(await authenticateToken(ctx, 'second-token')).toBeNull();
  });

  it('makes a random UUID admin token when none is given', async () => {
    const ctx = context();
    const { user } = await getOrCreateAdminUser(ctx);

    expect(ctx.cipher.decrypt(user.token)).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('refuses tokens of inactive users and tokens that only share the hash lookup', async () => {
    const ctx = context();
    const user = await createUser(ctx, { username: 'u1', globalRole: 'user', token: 'tok-1' });

    expect((await authenticateToken(ctx, 'tok-1'))?.id).toBe(user.id);

    await ctx.store.update('users', { id: user.id }, { active: false });
    expect(await authenticateToken(ctx, 'tok-1')).toBeNull();

    const patch = { active: true, token: ctx.cipher.encrypt('x') };
    await ctx.store.update('users', { id: user.id }, patch);
    expect(await authenticateToken(ctx, 'tok-1')).toBeNull();
  });

  it('stores a working RSA key pair with the private half encrypted', async () => {
    const ctx = context();
    const user = await createUser(ctx, { username: 'keys', globalRole: 'user' });
    const { createPrivateKey, createPublicKey } = await import('node:crypto');
    const privateKey = createPrivateKey(ctx.cipher.decrypt(user.sshPrivateKey as string));
    const jwk = createPublicKey(privateKey).export({ format: 'jwk' });
    const blob = Buffer.from((user.sshPublicKey as string).split(' ')[1] as string, 'base64');

    expect(user.sshPrivateKey?.startsWith('enc:aes:k1:')).toBe(true);
    expect(blob.subarray(4, 11).toString()).toBe('ssh-rsa');
    const modulus = Buffer.from(jwk.n as string, 'base64url').toString('hex');
    expect(blob.toString('hex')).toContain(modulus);
  });

  it('orders pages by time then id the way §5 says', () => {
    const items = [
      { t: 1, id: 'b' }, { t: 2, id: 'a' }, { t: 1, id: 'a' }, { t: 3, id: 'c' },
    ];
    const ids = (list: typeof items) => list.map((item) => `${item.t}${item.id}`);
    const page = (query: Parameters<typeof keysetPage>[1]) =>
      ids(keysetPage(items, query, (item) => item.t, (item) => item.id));

    expect(page({ limit: 10, ascending: false })).toEqual(['3c', '2a', '1a', '1b']);
    expect(page({ limit: 10, ascending: true })).toEqual(['1b', '1a', '2a', '3c']);
    expect(page({ limit: 10, ascending: false, prevCreatedAt: 1, prevId: 'a' })).toEqual(['1b']);
    expect(page({ limit: 10, ascending: true, prevCreatedAt: 1, prevId: 'b' }))
      .toEqual(['1a', '2a', '3c']);
    expect(page({ limit: 10, ascending: false, prevCreatedAt: 2 })).toEqual(['1a', '1b']);
    expect(page({ limit: 1, ascending: false })).toEqual(['3c']);
  });

  it('filters users/list by a case-insensitive name substring', async () => {
    const ctx = context();
    const { user: admin } = await getOrCreateAdminUser(ctx);
    await createUser(ctx, { username: 'Alpha', globalRole: 'user' });
    await createUser(ctx, { username: 'beta', globalRole: 'user' });

    const found = await listUsers(ctx, admin, {
      limit: 10, ascending: true, returnTotalCount: true, namePattern: 'ALP',
    });

    expect(found).toMatchObject({ total_count: 1, users: [{ username: 'Alpha' }] });
  });
});
