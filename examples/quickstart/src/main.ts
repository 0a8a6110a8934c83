import { mkdtemp, rm } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runQuickstart } from './quickstart.js';

const usage = `usage: npm start [-- [config.dstack.yml] [--server-dir DIR | --home]]

Boots a dstack server in this process, runs the configuration on this machine (the local
backend), prints its logs as they come and exits with the job's exit status.
  config.dstack.yml  default: ../shared/fixtures/configs/task-hello.dstack.yml of the repo
  --server-dir DIR   keep the server's data in DIR (default: a temporary directory)
  --home             keep it in ~/.dstack/server, as the dstack server does`;

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

async function main(argv: string[]): Promise<number> {
  let configPath = resolve(repoRoot, '../shared/fixtures/configs/task-hello.dstack.yml');
  let serverDir: string | null = null;

  for (let index = 0; index < argv.length; index += 1) {
    const arg = argv[index];

    if (arg === '--help' || arg === '-h') {
      console.log(usage);
      return 0;
    } else if (arg === '--server-dir' && argv[index + 1] !== undefined) {
      serverDir = resolve(argv[index + 1]);
      index += 1;
    } else if (arg === '--home') {
      serverDir = join(homedir(), '.dstack', 'server');
    } else if (!arg.startsWith('-')) {
      configPath = resolve(process.env.INIT_CWD ?? process.cwd(), arg);
    } else {
      console.error(usage);
      return 2;
    }
  }

  const temporary = serverDir === null;
  const dir = serverDir ?? await mkdtemp(join(tmpdir(), 'dstack-quickstart-'));

  // Ctrl-C stops the run rather than leaving its processes behind.
  const aborter = new AbortController();
  process.once('SIGINT', () => aborter.abort());

  try {
    const { exitCode } = await runQuickstart({
      configPath,
      serverDir: dir,
      signal: aborter.signal,
      out: (text) => process.stdout.write(text),
      info: (text) => process.stderr.write(`${text}\n`),
    });
    return exitCode;
  } finally {
    if (temporary) {
      await rm(dir, { recursive: true, force: true });
    }
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exitCode = 1;
  },
);
