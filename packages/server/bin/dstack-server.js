#!/usr/bin/env node
// npm links a workspace's bins when it installs, before anything is built, and skips a bin
// whose file is missing: this file exists from the start and runs the built command.
const cli = await import('../dist/cli.js').catch((error) => {
  if (error?.code !== 'ERR_MODULE_NOT_FOUND' || !error.message.includes('dist/cli.js')) {
    throw error;
  }

  process.stderr.write('@dstack/server is not built: run `npm run build` first\n');
  process.exit(1);
});

cli.runCli(process.argv.slice(2));
