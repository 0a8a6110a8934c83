import type { CoreContext } from '../context.js';
import { defaultEventsTtlSeconds } from '../settings.js';

/**
 * Deletes the events recorded more than the TTL ago and returns how many went. Safe on
 * several replicas at once: the delete is idempotent.
 */
export async function deleteExpiredEvents(
  ctx: Pick<CoreContext, 'store' | 'now' | 'settings'>,
): Promise<number> {
  const ttlSeconds = ctx.settings.eventsTtlSeconds ?? defaultEventsTtlSeconds;
  const before = ctx.now() - ttlSeconds * 1000;

  return ctx.store.delete('events', { recordedAt: { lt: before } });
}
