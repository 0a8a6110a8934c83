import { describe, expect, it } from 'vitest';
import { createMemoryStateStore, StoreClosedError } from '@dstack/core';
import { runStateStoreContract } from '@dstack/core/testing';

runStateStoreContract('memory', async () => createMemoryStateStore());

describe('memory state store', () => {
  it('rejects a store call made inside a transaction instead of waiting forever', async () => {
    const store = createMemoryStateStore();

    await expect(
      store.transaction(async () => {
        await store.count('runs');
      }),
    ).rejects.toThrow('use the transaction access');
    await expect(store.count('runs')).resolves.toBe(0);
    await store.close();
  });

  it('rejects the transaction access once the transaction has ended', async () => {
    const store = createMemoryStateStore();
    const tx = await store.transaction(async (access) => access);

    await expect(tx.count('runs')).rejects.toThrow('already ended');
    await store.close();
  });

  it('rejects unknown tables and columns', async () => {
    const store = createMemoryStateStore();

    await expect(store.count('nope' as 'runs')).rejects.toThrow('unknown table nope');
    await expect(store.find('runs', { where: { nope: 1 } as never })).rejects.toThrow(
      'unknown column nope on table runs',
    );
    await store.close();
  });
});

describe('closing a store', () => {
  it('waits for the calls in flight and then rejects new ones', async () => {
    const store = createMemoryStateStore();
    let finished = false;
    const slow = store.transaction(async (tx) => {
      await new Promise((resolve) => setTimeout(resolve, 30));
      await tx.count('runs');
      finished = true;
      return 'done';
    });

    await store.close();

    expect(finished).toBe(true);
    await expect(slow).resolves.toBe('done');
    await expect(store.count('runs')).rejects.toBeInstanceOf(StoreClosedError);
    await expect(store.close()).resolves.toBeUndefined();
  });
});
