import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (path: string): string => fileURLToPath(new URL(`./packages/${path}`, import.meta.url));

/**
 * Tests import the workspace packages from their sources, so a unit test needs no build.
 * End-to-end tests that start the bin use the built `dist/` instead.
 */
export default defineConfig({
  resolve: {
    alias: [
      { find: /^@dstack\/core\/testing$/, replacement: src('core/src/testing/index.ts') },
      { find: /^@dstack\/([a-z-]+)$/, replacement: src('$1/src/index.ts') },
    ],
  },
  test: {
    testTimeout: 30_000,
    hookTimeout: 30_000,
    include: ['test/**/*.test.ts'],
  },
});
