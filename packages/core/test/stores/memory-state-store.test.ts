import { describe, expect, it } from 'vitest';
import { createMemoryStateStore } from '@dstack/core';
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
