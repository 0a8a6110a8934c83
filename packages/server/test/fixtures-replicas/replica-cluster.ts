import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { build } from 'tsup';
import type { FastBackendEvent } from './fast-backend.js';

/** The built bin: these tests run the server as users do, one process per replica. */
export const serverBin = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

const postgresBase =
  process.env.DSTACK_TEST_POSTGRES_URL ?? 'postgresql://postgres@127.0.0.1:5432/test';

/** Fails early with the command to run when the bin was not built. */
export function requireBuiltBin(): void {
  if (!existsSync(serverBin)) {
    throw new Error('build the server first: npx turbo run build --filter=@dstack/server...');
  }
}

/** A Postgres database of one test file's own, dropped at the end. */
export interface TestDatabase {
  name: string;
  /** What DSTACK_DATABASE_URL gets. */
  url: string;
  query<R extends pg.QueryResultRow = Record<string, unknown>>(
    text: string,
    values?: unknown[],
  ): Promise<R[]>;
  drop(): Promise<void>;
}

/** Creates an empty database on the test Postgres. */
export async function createTestDatabase(prefix: string): Promise<TestDatabase> {
  const name = `${prefix}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: postgresBase });
  await admin.connect();
  await admin.query(`create database "${name}"`);
  await admin.end();

  const url = new URL(postgresBase);
  url.pathname = `/${name}`;
  const pool = new pg.Pool({ connectionString: url.toString(), max: 2 });

  return {
    name,
    url: url.toString(),
    async query(text, values) {
      return (await pool.query(text, values)).rows;
    },
    async drop() {
      await pool.end();
      const client = new pg.Client({ connectionString: postgresBase });
      await client.connect();
      await client.query(`drop database if exists "${name}" with (force)`);
      await client.end();
    },
  };
}

/**
 * Builds the fast backend plugin into `outDir` with the repo's own bundler (Node 20 cannot
 * import TypeScript) and returns the module's absolute path.
 */
export async function buildFastBackend(outDir: string): Promise<string> {
  await build({
    entry: { 'fast-backend': fileURLToPath(new URL('./fast-backend.ts', import.meta.url)) },
    outDir,
    format: ['esm'],
    platform: 'node',
    target: 'node20',
    dts: false,
    sourcemap: false,
    clean: false,
    silent: true,
    config: false,
  });

  return join(outDir, 'fast-backend.js');
}

/** A started replica: one bin process with its own server directory and port. */
export interface Replica {
  name: string;
  child: ChildProcess;
  url: string;
  token: string;
  /** Everything it printed so far. */
  output(): string;
}

/** Options of `startReplica`. */
export interface StartReplicaOptions {
  name: string;
  serverDir: string;
  env: Record<string, string>;
  /** config.yml, written into the server directory when it has none yet. */
  config?: string;
  /** How long to wait for "running at" (default 60 s: the machine is shared). */
  timeoutMillis?: number;
}

const children = new Set<ChildProcess>();

/** Spawns the bin on port 0 and resolves once it prints its token and URL. */
export async function startReplica(options: StartReplicaOptions): Promise<Replica> {
  await mkdir(options.serverDir, { recursive: true });

  if (options.config !== undefined) {
    await writeFile(join(options.serverDir, 'config.yml'), options.config, { flag: 'wx' })
      .catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'EEXIST') {
          throw error;
        }
      });
  }

  const child = spawn(process.execPath, [serverBin, '--port', '0'], {
    env: {
      ...process.env,
      DSTACK_SERVER_DIR: options.serverDir,
      DSTACK_SERVER_LOG_LEVEL: 'WARNING',
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));

  let text = '';
  child.stdout?.on('data', (chunk: Buffer) => (text += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (text += chunk.toString()));
  const timeoutMillis = options.timeoutMillis ?? 60_000;

  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`${options.name} did not start:\n${text}`));
    }, timeoutMillis);
    const check = (): void => {
      const token = /The admin token is (\S+)/.exec(text);
      const url = /The dstack server \S+ is running at (\S+)/.exec(text);

      if (token?.[1] && url?.[1]) {
        clearTimeout(timer);
        child.stdout?.off('data', check);
        resolve({ name: options.name, child, url: url[1], token: token[1], output: () => text });
      }
    };

    child.stdout?.on('data', check);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${options.name} exited with ${String(code ?? signal)}:\n${text}`));
    });
  });
}

/** A config.yml whose project `main` has only the fast backend (no `local`, no default fleet). */
export const fastOnlyConfig = `projects:
  - name: main
    backends:
      - type: fast
`;

/** Resolves with the exit code once the process has ended. */
export function exitOf(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve(child.exitCode);
  }

  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/** Ends every replica still running: SIGTERM, then SIGKILL after `graceMillis`. */
export async function stopAllReplicas(graceMillis = 5000): Promise<void> {
  await Promise.all(
    [...children].map(async (child) => {
      const exited = exitOf(child);
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMillis);
      await exited;
      clearTimeout(timer);
    }),
  );
}

/** POSTs to a replica's API as its admin; throws on a non-2xx answer with the body. */
export async function api<T = any>(replica: Replica, path: string, body?: unknown): Promise<T> {
  const response = await fetch(`${replica.url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${replica.token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body ?? {}),
  });
  const text = await response.text();

  if (!response.ok) {
    throw new Error(`${replica.name} ${path}: ${response.status} ${text}`);
  }

  return (text === '' ? null : JSON.parse(text)) as T;
}

/** Every line the fast backend wrote to `events.jsonl`, in file order. */
export async function readFastEvents(stateDir: string): Promise<FastBackendEvent[]> {
  let text: string;

  try {
    text = await readFile(join(stateDir, 'events.jsonl'), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      return [];
    }

    throw error;
  }

  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as FastBackendEvent);
}

/** How often each id has an event of this kind. */
export function countBy(events: readonly FastBackendEvent[], kind: FastBackendEvent['event']) {
  const counts = new Map<string, number>();

  for (const event of events) {
    if (event.event === kind) {
      counts.set(event.id, (counts.get(event.id) ?? 0) + 1);
    }
  }

  return counts;
}

/** Polls `check` until it returns a value other than undefined, or throws after the timeout. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined>,
  options: { timeoutMillis: number; intervalMillis?: number },
): Promise<T> {
  const deadline = Date.now() + options.timeoutMillis;

  for (;;) {
    const value = await check();

    if (value !== undefined) {
      return value;
    }

    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}`);
    }

    await new Promise((resolve) => setTimeout(resolve, options.intervalMillis ?? 500));
  }
}
