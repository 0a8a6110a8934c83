import type { Logger } from '../ports/logger.js';
import type { OrderBy, StateAccess, StateStore, Where } from '../ports/state-store.js';
import type { LeasedTableName, TableRows } from '../records.js';
import { newId } from '../util/ids.js';

/** A claimed row and the lease that guards every write to it. */
export interface Claimed<T extends LeasedTableName> {
  row: TableRows[T];
  token: string;
  /**
   * Writes `patch` and ends the lease in one update, only while this worker still holds the
   * lease and the row still has the status it was claimed with (an API write may have
   * changed it). Returns false when the row was not written: the work is then dropped.
   */
  commit(patch: Partial<TableRows[T]>, tx?: StateAccess): Promise<boolean>;
  /** Whether the lease is still held: check it before slow work with side effects. */
  held(): Promise<boolean>;
}

/** One background pipeline: which rows of a table are due and what to do with each. */
export interface PipelineDefinition<T extends LeasedTableName> {
  /** Written to `lockOwner`; unique among pipelines. */
  name: string;
  table: T;
  /** Rows due at `now`; the store adds "no lease, or an expired one". */
  due(now: number): Where<TableRows[T]>;
  orderBy?: OrderBy<TableRows[T]>;
  /** Handles one row; throwing is logged and the row is retried on a later pass. */
  process(item: Claimed<T>): Promise<void>;
}

/** How fast a pipeline works. */
export interface PipelineOptions {
  /** Rows handled at the same time. */
  workers: number;
  /** How long a lease lasts before another worker may take the row. */
  leaseMillis: number;
  /** Longest sleep after an empty fetch; hints cut it short. */
  maxIdleMillis: number;
  /**
   * At most this many rows a second: with many active rows each row is visited less often
   * instead of the pipeline starving the API and the other pipelines. Unlimited when unset.
   */
  maxRowsPerSecond?: number;
}

/** A running pipeline. */
export interface PipelineHandle {
  /** Fetches at once instead of waiting out the back-off. */
  wake(): void;
  /** Stops fetching and waits for the rows in hand. */
  stop(): Promise<void>;
}

interface PipelineDeps {
  store: StateStore;
  logger: Logger;
  now: () => number;
}

/**
 * Rows in the given statuses that are due: never looked at by a pipeline since their last
 * status change (no owner), or last processed at least the status's interval ago.
 */
export function dueByStatus<R extends { status: string; lockOwner: string | null;
  lastProcessedAt: number }>(
  now: number,
  intervals: readonly (readonly [readonly string[], number])[],
): Where<R> {
  const or: Where<R>[] = [];

  for (const [statuses, intervalMillis] of intervals) {
    const status = { in: statuses } as Where<R>['status'];
    or.push({ status, lockOwner: null } as Where<R>);
    or.push({ status, lastProcessedAt: { lte: now - intervalMillis } } as Where<R>);
  }

  return { $or: or } as Where<R>;
}

const idleSteps = [50, 100, 250, 500, 1000, 2000, 5000];

/**
 * Starts a pipeline: a loop that claims due rows with a lease, hands each to `process`,
 * renews the leases of rows still in hand, and releases a lease the work did not commit.
 */
export function startPipeline<T extends LeasedTableName>(
  deps: PipelineDeps,
  definition: PipelineDefinition<T>,
  options: PipelineOptions,
): PipelineHandle {
  const { store, logger, now } = deps;
  const log = logger.child({ pipeline: definition.name });
  const inHand = new Map<string, string>();
  const running = new Set<Promise<void>>();
  let stopped = false;
  let idleIndex = 0;
  let wakeUp: (() => void) | null = null;
  let woken = false;

  const sleep = (millis: number): Promise<void> =>
    new Promise((resolve) => {
      if (woken) {
        woken = false;
        resolve();
        return;
      }

      const timer = setTimeout(done, millis);

      function done(): void {
        clearTimeout(timer);
        wakeUp = null;
        resolve();
      }

      wakeUp = done;
    });

  /**
   * Ends a lease with `patch`, naming this pipeline the row's owner so the row waits out its
   * interval, unless a nudge cleared the owner during the lease: then the row stays due at once.
   */
  const endLease = async (
    where: Where<TableRows[T]>,
    patch: Partial<TableRows[T]>,
    access: StateAccess,
  ): Promise<number> => {
    const owned = { ...where, lockOwner: definition.name } as Where<TableRows[T]>;
    const changed = await access.update(definition.table, owned, patch);

    if (changed > 0) {
      return changed;
    }

    const { lockOwner: _owner, ...keepMark } = patch as Partial<TableRows[T]> & {
      lockOwner?: unknown;
    };
    const nudged = { ...where, lockOwner: null } as Where<TableRows[T]>;
    return access.update(definition.table, nudged, keepMark as Partial<TableRows[T]>);
  };

  const release = async (id: string, token: string): Promise<void> => {
    const where = { id, lockToken: token } as Where<TableRows[T]>;
    const patch = {
      lockToken: null,
      lockOwner: definition.name,
      lockExpiresAt: null,
      lastProcessedAt: now(),
    } as Partial<TableRows[T]>;

    await endLease(where, patch, store);
  };

  const handle = async (row: TableRows[T], token: string): Promise<void> => {
    let committed = false;
    const item: Claimed<T> = {
      row,
      token,
      async commit(patch, tx) {
        const where = { id: row.id, lockToken: token, status: row.status } as Where<TableRows[T]>;
        const moved = 'status' in patch && patch.status !== row.status;
        // A row that changed status has no owner, so the next pipeline takes it at once.
        const full = {
          lastProcessedAt: now(),
          ...patch,
          lockToken: null,
          lockOwner: moved ? null : definition.name,
          lockExpiresAt: null,
        } as Partial<TableRows[T]>;
        const changed = moved
          ? await (tx ?? store).update(definition.table, where, full)
          : await endLease(where, full, tx ?? store);

        committed = changed > 0;

        if (!committed) {
          log.warn({ id: row.id }, 'lease lost or row changed; dropping the result');
        }

        return committed;
      },
      async held() {
        const current = await store.get(definition.table, row.id);
        return current !== undefined && current.lockToken === token &&
          current.status === row.status;
      },
    };

    try {
      await definition.process(item);
    } catch (error) {
      log.error({ id: row.id, err: error instanceof Error ? error.message : String(error) },
        'processing failed');
    } finally {
      inHand.delete(row.id);

      if (!committed) {
        await release(row.id, token).catch(() => undefined);
      }
    }
  };

  const heartbeat = setInterval(() => {
    if (inHand.size === 0) {
      return;
    }

    const leases = [...inHand.entries()].map(([id, token]) => ({ id, token }));
    store.renewLeases(definition.table, leases, now() + options.leaseMillis).then(
      (renewed) => {
        const kept = new Set(renewed);

        for (const lease of leases) {
          if (!kept.has(lease.id)) {
            inHand.delete(lease.id);
          }
        }
      },
      (error: unknown) => log.warn({ err: String(error) }, 'lease renewal failed'),
    );
  }, Math.max(50, Math.floor(options.leaseMillis / 3)));

  const rate = options.maxRowsPerSecond ?? Number.POSITIVE_INFINITY;
  let tokens = Math.min(rate, options.workers);
  let refilledAt = Date.now();

  const refill = (): void => {
    if (rate === Number.POSITIVE_INFINITY) {
      tokens = Number.POSITIVE_INFINITY;
      return;
    }

    const at = Date.now();
    tokens = Math.min(Math.max(rate, 1), tokens + ((at - refilledAt) / 1000) * rate);
    refilledAt = at;
  };

  const loop = async (): Promise<void> => {
    while (!stopped) {
      refill();
      const idleWorkers = options.workers - running.size;

      if (idleWorkers <= 0) {
        await Promise.race(running);
        continue;
      }

      // A capped pipeline claims in batches (a quarter second of its rate at a time): every
      // claim scans the due rows, so a claim per row would cost more than the rows.
      const batch = Math.min(idleWorkers, Math.max(1, Math.ceil(rate / 4)));

      if (tokens < batch) {
        await sleep(Math.max(5, Math.ceil(((batch - tokens) / rate) * 1000)));
        continue;
      }

      const free = Math.min(idleWorkers, Math.floor(tokens));

      let rows: TableRows[T][] = [];
      const token = newId();
      const at = now();

      try {
        rows = await store.claim(definition.table, {
          where: definition.due(at),
          orderBy: definition.orderBy ?? ([['lastProcessedAt', 'asc']] as OrderBy<TableRows[T]>),
          limit: free,
          owner: definition.name,
          token,
          now: at,
          expiresAt: at + options.leaseMillis,
        });
      } catch (error) {
        if (stopped) {
          break;
        }

        log.error({ err: error instanceof Error ? error.message : String(error) }, 'claim failed');
      }

      tokens -= rows.length;

      for (const row of rows) {
        inHand.set(row.id, token);
        const work = handle(row, token);
        running.add(work);
        void work.finally(() => running.delete(work));
      }

      if (rows.length > 0) {
        idleIndex = 0;
        continue;
      }

      const step = idleSteps[Math.min(idleIndex, idleSteps.length - 1)]!;
      idleIndex += 1;
      await sleep(Math.min(step, options.maxIdleMillis));
    }
  };

  const looping = loop();

  return {
    wake() {
      idleIndex = 0;

      if (wakeUp !== null) {
        wakeUp();
      } else {
        woken = true;
      }
    },
    async stop() {
      stopped = true;
      wakeUp?.();
      clearInterval(heartbeat);
      await looping;
      await Promise.allSettled([...running]);
    },
  };
}
