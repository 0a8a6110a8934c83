import { timingSafeEqual } from 'node:crypto';
import type { CoreContext } from '../context.js';
import type { UserRecord } from '../records.js';
import { sha256Hex } from '../util/ids.js';

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

  const stored = Buffer.from(ctx.cipher.decrypt(user.token), 'utf8');
  const given = Buffer.from(token, 'utf8');

  return stored.length === given.length && timingSafeEqual(stored, given) ? user : null;
}
