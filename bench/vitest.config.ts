import { defineConfig, mergeConfig } from 'vitest/config';
import shared from '../vitest.shared.js';

// On demand only: `npx vitest run --config bench/vitest.config.ts` from the repo root.
export default mergeConfig(shared, defineConfig({
  test: {
    include: ['bench/**/*.bench-test.ts'],
    testTimeout: 3_600_000,
    hookTimeout: 600_000,
  },
}));
