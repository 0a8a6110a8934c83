import {
  createCipher,
  createMemoryStateStore,
  defaultPermissions,
  silentLogger,
} from '@dstack/core';
import type { CoreContext, LogStore, StateStore } from '@dstack/core';

/** A CoreContext on the in-memory store with identity encryption, for in-process tests. */
export function createTestContext(overrides: Partial<CoreContext> = {}): CoreContext {
  const store: StateStore = overrides.store ?? createMemoryStateStore();

  return {
    store,
    logs: overrides.logs ?? (undefined as unknown as LogStore),
    cipher: createCipher(),
    providers: new Map(),
    logger: silentLogger,
    settings: {
      serverDir: '/nonexistent',
      serverVersion: '0.21.0',
      defaultPermissions: { ...defaultPermissions },
      userProjectQuota: 10,
    },
    now: () => Date.now(),
    ...overrides,
  };
}
