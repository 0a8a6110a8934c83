#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { runServerCommand, StartError } from './cli/run-server-command.js';

/** A subcommand module: `dstack-server <name> ...` runs its function with the rest of argv. */
interface Subcommand {
  module: string;
  run: string;
}

const subcommands: Record<string, Subcommand> = {
  'copy-state': { module: './commands/copy-state.js', run: 'runCopyStateCommand' },
  reencrypt: { module: './commands/reencrypt.js', run: 'runReencryptCommand' },
};

async function runSubcommand(name: string, spec: Subcommand, argv: string[]): Promise<void> {
  let loaded: Record<string, unknown>;

  try {
    // A variable path: the subcommand modules are built as their own entries.
    const path = spec.module;
    loaded = (await import(path)) as Record<string, unknown>;
  } catch (error) {
    throw new StartError(
      `The '${name}' command is not available in this build: ${(error as Error).message}`,
    );
  }

  const run = loaded[spec.run];

  if (typeof run !== 'function') {
    throw new StartError(`The '${name}' command is not available in this build`);
  }

  const code = await (run as (args: string[]) => Promise<number | void>)(argv);

  if (typeof code === 'number') {
    process.exitCode = code;
  }
}

/** Runs `dstack-server` with these arguments (without node and the script). */
export async function main(argv: string[]): Promise<void> {
  const [first, ...rest] = argv;
  const subcommand = first === undefined ? undefined : subcommands[first];

  if (first !== undefined && subcommand !== undefined) {
    await runSubcommand(first, subcommand, rest);
    return;
  }

  await runServerCommand(argv);
}

function isEntryPoint(): boolean {
  const script = process.argv[1];

  if (script === undefined) {
    return false;
  }

  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

/** Runs the command and exits the process with its status: what the bin does. */
export function runCli(argv: string[]): void {
  main(argv).then(
    () => process.exit(process.exitCode ?? 0),
    (error: unknown) => {
      if (error instanceof StartError) {
        process.stderr.write(`${error.message}\n`);
        process.exit(error.exitCode);
      }

      process.stderr.write(`The server stopped: ${(error as Error).stack ?? String(error)}\n`);
      process.exit(1);
    },
  );
}

if (isEntryPoint()) {
  runCli(process.argv.slice(2));
}
