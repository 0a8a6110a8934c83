import { defineConfig } from 'tsup';

export default defineConfig({
  // Subcommands are separate entries: the bin loads them on demand.
  entry: ['src/index.ts', 'src/cli.ts', 'src/commands/*.ts'],
  format: ['esm'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'node20',
});
