import type { StateAccess } from '../ports/state-store.js';
import type { LeasedTableName } from '../records.js';

/**
 * Marks a row as due at once (no owner), so its pipeline takes it on the next fetch instead
 * of waiting out its interval: how a job tells its run that something changed. A row under a
 * lease is marked too: the lease holder's commit keeps the mark (see `startPipeline`), so a
 * change that lands while the row is being processed is not lost.
 */
export async function nudge(
  access: StateAccess,
  table: LeasedTableName,
  id: string,
): Promise<void> {
  await access.update(table, { id }, { lockOwner: null });
}
