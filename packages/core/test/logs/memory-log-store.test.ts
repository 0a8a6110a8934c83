import { createMemoryLogStore } from '@dstack/core';
import { runLogStoreContract } from '@dstack/core/testing';
import { describe, expect, it } from 'vitest';

runLogStoreContract('memory', async () => createMemoryLogStore());

describe('memory log store', () => {
  const stream = {
    projectName: 'main',
    runName: 'r',
    jobSubmissionId: 'a4b6ee0e-0b4a-4f1a-9d59-2a4c9d0f6f11',
    producer: 'job' as const,
  };

  it('rejects a token it did not issue', async () => {
    const store = createMemoryLogStore();

    await expect(store.poll(stream, { limit: 10, nextToken: 'abc' })).rejects.toThrow(
      'Invalid next_token: abc',
    );
  });

  it('does not share event objects with the caller', async () => {
    const store = createMemoryLogStore();
    const events = [{ timestamp: 1_000, logSource: 'stdout' as const, message: 'a' }];
    await store.write(stream, events);
    events[0].message = 'changed';

    const page = await store.poll(stream, { limit: 10 });

    expect(page.events[0].message).toBe('a');
  });
});
