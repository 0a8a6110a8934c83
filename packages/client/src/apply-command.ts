import { resolve } from 'node:path';
import { createClient } from './client.js';
import { followRun } from './follow-run.js';

export const applyUsage = `usage: dstack-apply FILE [--url URL] [--token TOKEN] [--project NAME]
                    [--detach]

Applies a run or fleet configuration (.dstack.yml) to a dstack server, prints the run's
logs as they come and exits with the job's exit status. A scheduled run is only
submitted: it says when the run starts next and exits.
  --url      the server (default: $DSTACK_SERVER_URL or http://127.0.0.1:3000)
  --token    a user token (default: $DSTACK_TOKEN)
  --project  the project (default: $DSTACK_PROJECT or main)
  --detach   return once the run is submitted`;

export interface ApplyCommandIo {
  env: NodeJS.ProcessEnv;
  cwd: string;
  out: (text: string) => void;
  err: (text: string) => void;
  signal?: AbortSignal;
}

interface ApplyArguments {
  file: string;
  url: string;
  token: string;
  project: string;
  detach: boolean;
}

function parseArguments(argv: readonly string[], env: NodeJS.ProcessEnv): ApplyArguments | string {
  const values: Record<string, string> = {};
  const files: string[] = [];
  let detach = false;

  for (let index = 0; index < argv.length; index += 1) {
    const arg = argv[index] ?? '';

    if (arg === '--detach' || arg === '-d') {
      detach = true;
    } else if (['--url', '--token', '--project'].includes(arg)) {
      const value = argv[index + 1];

      if (value === undefined) {
        return `${arg} needs a value`;
      }

      values[arg.slice(2)] = value;
      index += 1;
    } else if (arg.startsWith('-')) {
      return `unknown option ${arg}`;
    } else {
      files.push(arg);
    }
  }

  if (files.length !== 1) {
    return 'name one configuration file';
  }

  const token = values['token'] ?? env['DSTACK_TOKEN'];

  if (token === undefined || token === '') {
    return 'no token: pass --token or set DSTACK_TOKEN';
  }

  return {
    file: files[0] ?? '',
    url: values['url'] ?? env['DSTACK_SERVER_URL'] ?? 'http://127.0.0.1:3000',
    token,
    project: values['project'] ?? env['DSTACK_PROJECT'] ?? 'main',
    detach,
  };
}

/** `dstack-apply FILE`: returns the process exit code (2 for bad arguments). */
export async function runApplyCommand(
  argv: readonly string[],
  io: ApplyCommandIo,
): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    io.out(`${applyUsage}\n`);
    return 0;
  }

  const parsed = parseArguments(argv, io.env);

  if (typeof parsed === 'string') {
    io.err(`dstack-apply: ${parsed}\n${applyUsage}\n`);
    return 2;
  }

  const client = createClient({
    url: parsed.url,
    token: parsed.token,
    projectName: parsed.project,
  });

  try {
    const applied = await client.apply(resolve(io.cwd, parsed.file));

    if (applied.kind === 'fleet') {
      io.err(`fleet ${applied.fleet.name} applied: ${applied.fleet.status}\n`);
      return 0;
    }

    const runName = applied.run.run_spec.run_name ?? '';
    const nextAt = applied.run.next_triggered_at ?? null;

    // A scheduled run may not start for months: following it would look like a hang.
    if (applied.run.status === 'pending' && nextAt !== null) {
      io.err(`run ${runName} scheduled: it starts next at ${nextAt}; `
        + `stop it with runs/stop to end the schedule\n`);
      return 0;
    }

    io.err(`run ${runName} submitted\n`);

    if (parsed.detach) {
      return 0;
    }

    const { exitCode } = await followRun(client, runName, {
      out: io.out,
      info: (text) => io.err(`${text}\n`),
      ...(io.signal === undefined ? {} : { signal: io.signal }),
    });

    return exitCode;
  } catch (error) {
    io.err(`dstack-apply: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}
