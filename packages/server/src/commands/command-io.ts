import { homedir } from 'node:os';
import { join } from 'node:path';

/** Where a subcommand writes and what environment it reads; tests pass their own. */
export interface CommandIo {
  stdout: (line: string) => void;
  stderr: (line: string) => void;
  env: Record<string, string | undefined>;
}

/** The process's own output streams and environment. */
export const processIo: CommandIo = {
  stdout: (line) => process.stdout.write(`${line}\n`),
  stderr: (line) => process.stderr.write(`${line}\n`),
  env: process.env,
};

/** The server directory a subcommand works on: $DSTACK_SERVER_DIR, else ~/.dstack/server. */
export function commandServerDir(env: CommandIo['env']): string {
  return env.DSTACK_SERVER_DIR || join(homedir(), '.dstack', 'server');
}

/**
 * Answers arguments a subcommand will not run with: `help` prints the usage and exits 0,
 * any other reason is printed with the usage to stderr and exits 2. Resolves to the exit code.
 */
export function answerArguments(
  command: string,
  reason: string,
  usage: string,
  io: CommandIo,
): number {
  if (reason === 'help') {
    io.stdout(usage);
    return 0;
  }

  io.stderr(`${command}: ${reason}\n\n${usage}`);
  return 2;
}
