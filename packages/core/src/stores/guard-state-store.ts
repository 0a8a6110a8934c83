import { AsyncLocalStorage } from 'node:async_hooks';
import type { StateAccess, StateStore } from '../ports/state-store.js';
import { StoreClosedError } from './errors.js';

interface ActiveTransaction {
  open: boolean;
}

const accessMethods = ['get', 'find', 'findOne', 'count', 'insert', 'update', 'delete'] as const;
const storeMethods = [...accessMethods, 'claim', 'renewLeases', 'withLock'] as const;

type AnyMethod = (...args: unknown[]) => Promise<unknown>;

function guardAccess(access: StateAccess, active: ActiveTransaction): StateAccess {
  const guarded: Record<string, AnyMethod> = {};

  for (const name of accessMethods) {
    const method = (access[name] as AnyMethod).bind(access);
    guarded[name] = (...args) =>
      active.open
        ? method(...args)
        : Promise.reject(new Error('the transaction has already ended'));
  }

  return guarded as unknown as StateAccess;
}

/**
 * Adds the rules every StateStore shares around an adapter: calls after `close()` reject,
 * `close()` waits for the calls in flight, and a call on the store itself from inside a
 * transaction's work rejects (it would wait for that transaction, or run outside it).
 */
export function guardStateStore(store: StateStore): StateStore {
  const current = new AsyncLocalStorage<ActiveTransaction>();
  const inFlight = new Set<Promise<unknown>>();
  let closing: Promise<void> | undefined;

  const enter = <R>(call: () => Promise<R>): Promise<R> => {
    if (closing) {
      return Promise.reject(new StoreClosedError());
    }

    if (current.getStore()?.open) {
      return Promise.reject(
        new Error('a state store call inside a transaction: use the transaction access'),
      );
    }

    const pending = call();
    const tracked = pending.then(
      () => undefined,
      () => undefined,
    );
    inFlight.add(tracked);
    void tracked.then(() => inFlight.delete(tracked));
    return pending;
  };

  const guarded: Record<string, unknown> = {};

  for (const name of storeMethods) {
    const method = (store[name] as AnyMethod).bind(store);
    guarded[name] = (...args: unknown[]) => enter(() => method(...args));
  }

  guarded.transaction = <R>(work: (tx: StateAccess) => Promise<R>): Promise<R> =>
    enter(() =>
      store.transaction(async (tx) => {
        const active: ActiveTransaction = { open: true };

        try {
          return await current.run(active, () => work(guardAccess(tx, active)));
        } finally {
          active.open = false;
        }
      }),
    );

  guarded.close = (): Promise<void> => {
    closing ??= (async () => {
      await Promise.all(inFlight);
      await store.close();
    })();
    return closing;
  };

  return guarded as unknown as StateStore;
}
