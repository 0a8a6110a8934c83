import { join } from 'node:path';
import { createCipher, reencryptStore } from '@dstack/core';
import type { Cipher, ReencryptTableReport, StateStore } from '@dstack/core';
import {
  isPostgresUrl,
  openStateStore,
  readStateStoreEnv,
  redactDatabaseUrl,
} from '../compose/state-store.js';
import { loadServerConfig } from '../config/server-config.js';
import { answerArguments, commandServerDir, processIo } from './command-io.js';
import type { CommandIo } from './command-io.js';

const usage = `Usage: dstack-server reencrypt [--allow-plaintext] [--batch-size <rows>]

Rewrites every encrypted value (user tokens, backend and repo credentials, secrets, SSH
private keys, SSH host connection info) with the first key of encryption.keys in
$DSTACK_SERVER_DIR/config.yml, in the database the server uses (DSTACK_DATABASE_URL, else
SQLite). It is safe while the server runs and safe to run again. Restart the server with the
new key first in the list before running it; once it reports no value left under an old key,
that key can be removed.
  --allow-plaintext  go ahead when the first key is identity (values are stored decrypted)
  --batch-size       rows read at a time (default 200)`;

interface ReencryptArguments {
  allowPlaintext: boolean;
  batchSize: number;
}

function parseArguments(argv: readonly string[]): ReencryptArguments | 'help' | string {
  const args = argv[0] === 'reencrypt' ? argv.slice(1) : argv;
  const parsed: ReencryptArguments = { allowPlaintext: false, batchSize: 200 };

  for (let index = 0; index < args.length; index += 1) {
    const [flag, inline] = args[index].split(/=(.*)/s, 2);

    if (flag === '--help' || flag === '-h') {
      return 'help';
    }

    if (flag === '--allow-plaintext' && inline === undefined) {
      parsed.allowPlaintext = true;
      continue;
    }

    if (flag !== '--batch-size') {
      return `unknown argument ${args[index]}`;
    }

    const value = inline ?? args[(index += 1)];

    if (value === undefined || !/^[1-9]\d*$/.test(value)) {
      return '--batch-size needs a whole number above 0';
    }

    parsed.batchSize = Number(value);
  }

  return parsed;
}

/** How often progress is printed: about every 5000 rows, at least every batch. */
function progressStepRows(batchSize: number): number {
  return Math.max(batchSize, Math.round(5000 / batchSize) * batchSize);
}

function counts(values: Record<string, number>): string {
  const entries = Object.entries(values);

  return entries.length === 0
    ? 'none'
    : entries.map(([key, count]) => `${count} from ${key}`).join(', ');
}

function describeTable(report: ReencryptTableReport): string {
  const failed = Object.entries(report.failed);
  const parts = [
    `${report.rows} rows`,
    `rewritten: ${counts(report.rewritten)}`,
    `already current: ${report.current}`,
  ];

  if (failed.length > 0) {
    parts.push(`unreadable: ${failed.map(([key, count]) => `${count} under ${key}`).join(', ')}`);
  }

  if (report.conflicts > 0) {
    parts.push(`changed while read: ${report.conflicts}`);
  }

  return `  ${report.table}: ${parts.join('; ')}`;
}

function describeDatabase(env: CommandIo['env'], serverDir: string): string {
  const url = env.DSTACK_DATABASE_URL?.trim();

  if (url && isPostgresUrl(url)) {
    return `Postgres ${redactDatabaseUrl(url)}`;
  }

  return url ? `SQLite ${url}` : `SQLite ${join(serverDir, 'data', 'sqlite.db')}`;
}

/** Reads config.yml and builds the cipher the way the server does; a string says why not. */
async function cipherOf(
  env: CommandIo['env'],
  serverDir: string,
): Promise<{ cipher: Cipher; keyType: string } | string> {
  const disabled = Boolean(env.DSTACK_SERVER_CONFIG_DISABLED);
  const path = join(serverDir, 'config.yml');
  const config = disabled ? null : await loadServerConfig(path);

  if (config === null) {
    return `no ${path}: there are no encryption keys to re-encrypt with`;
  }

  const keys = config.encryption?.keys ?? [];

  return { cipher: createCipher(keys), keyType: keys[0]?.type ?? 'identity' };
}

/**
 * `dstack-server reencrypt`: rewrites every encrypted column of every table with the first
 * key of config.yml's `encryption.keys`, printing progress and the counts per table and key.
 * Resolves to the exit code: 0 done, 1 failed or values left unreadable, 2 bad arguments.
 */
export async function runReencryptCommand(
  argv: string[],
  io: CommandIo = processIo,
): Promise<number> {
  const parsed = parseArguments(argv);

  if (typeof parsed === 'string') {
    return answerArguments('reencrypt', parsed, usage, io);
  }

  const serverDir = commandServerDir(io.env);
  let store: StateStore | undefined;

  try {
    const built = await cipherOf(io.env, serverDir);

    if (typeof built === 'string') {
      io.stderr(`reencrypt: ${built}`);

      return 1;
    }

    if (built.keyType === 'identity' && !parsed.allowPlaintext) {
      io.stderr(
        'reencrypt: the first key is identity, so every value would be stored in plaintext;'
          + ' put an aes key first, or pass --allow-plaintext if that is what you want',
      );

      return 1;
    }

    const { cipher } = built;
    io.stdout(`re-encrypting ${describeDatabase(io.env, serverDir)} with key `
      + `${cipher.currentKeyName} (${built.keyType})`);
    // Not a server replica: it leaves the SQLite replica lock to the running server.
    store = await openStateStore({ serverDir, ...readStateStoreEnv(io.env), replicaLock: false });
    const reports = await reencryptStore(store, cipher, {
      batchSize: parsed.batchSize,
      onProgress: ({ table, rowsDone, rowsTotal }) => {
        const step = progressStepRows(parsed.batchSize);

        if (rowsDone >= rowsTotal || rowsDone % step < parsed.batchSize) {
          io.stdout(`  ${table}: ${rowsDone}/${rowsTotal} rows`);
        }
      },
    });

    io.stdout('done:');
    reports.forEach((report) => io.stdout(describeTable(report)));

    return summarize(reports, cipher.currentKeyName, io);
  } catch (error) {
    io.stderr(`reencrypt failed: ${(error as Error).message}`);

    return 1;
  } finally {
    await store?.close();
  }
}

function summarize(reports: ReencryptTableReport[], keyName: string, io: CommandIo): number {
  const sum = (pick: (report: ReencryptTableReport) => number): number =>
    reports.reduce((total, report) => total + pick(report), 0);
  const rewritten = sum((report) => Object.values(report.rewritten).reduce((a, b) => a + b, 0));
  const unreadable = sum((report) => Object.values(report.failed).reduce((a, b) => a + b, 0));
  const conflicts = sum((report) => report.conflicts);

  if (unreadable > 0) {
    io.stderr(
      `reencrypt: ${unreadable} values cannot be decrypted with the configured keys and were`
        + ' left as they are; add the keys named above back to config.yml and run it again',
    );

    return 1;
  }

  if (conflicts > 0) {
    io.stderr(`reencrypt: ${conflicts} rows kept changing while read; run it again`);

    return 1;
  }

  io.stdout(`${rewritten} values rewritten; every encrypted value now uses key ${keyName}`);

  return 0;
}
