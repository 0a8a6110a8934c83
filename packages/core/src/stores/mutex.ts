/** Runs tasks one at a time, in the order they asked. */
export interface Mutex {
  run<R>(task: () => Promise<R>): Promise<R>;
}

/** A promise-chain mutex: a task that throws does not block the ones after it. */
export function createMutex(): Mutex {
  let tail: Promise<unknown> = Promise.resolve();

  return {
    run<R>(task: () => Promise<R>): Promise<R> {
      const result = tail.then(task);
      tail = result.catch(() => undefined);
      return result;
    },
  };
}

/** One mutex per name, dropped again when nobody holds or waits for it. */
export interface KeyedMutex {
  run<R>(key: string, task: () => Promise<R>): Promise<R>;
}

/** Creates a KeyedMutex: the in-process form of a named lock. */
export function createKeyedMutex(): KeyedMutex {
  const entries = new Map<string, { mutex: Mutex; users: number }>();

  return {
    async run<R>(key: string, task: () => Promise<R>): Promise<R> {
      let entry = entries.get(key);

      if (!entry) {
        entry = { mutex: createMutex(), users: 0 };
        entries.set(key, entry);
      }

      entry.users += 1;

      try {
        return await entry.mutex.run(task);
      } finally {
        entry.users -= 1;

        if (entry.users === 0) {
          entries.delete(key);
        }
      }
    },
  };
}
