import { DecryptionError } from '../errors/server-errors.js';
import type { Cipher } from '../ports/cipher.js';
import type { Logger } from '../ports/logger.js';
import { silentLogger } from '../ports/logger.js';
import type { StateStore, Where } from '../ports/state-store.js';
import { encryptedColumns } from './encrypted-columns.js';
import type { EncryptedTableName } from './encrypted-columns.js';
import { parseStoredValue } from './stored-value.js';

/** What re-encryption did to one table; keys are `<type>:<name>` of the key a value had. */
export interface ReencryptTableReport {
  table: EncryptedTableName;
  rows: number;
  /** Values rewritten with the current key, by the key they had before. */
  rewritten: Record<string, number>;
  /** Values that already had the current key. */
  current: number;
  /** Values no configured key can decrypt, by the key they were written with; left as they are. */
  failed: Record<string, number>;
  /** Rows that changed under us every time we tried; they were written by the server anyway. */
  conflicts: number;
}

export interface ReencryptProgress {
  table: EncryptedTableName;
  rowsDone: number;
  rowsTotal: number;
}

export interface ReencryptOptions {
  /** Rows read per page. */
  batchSize?: number;
  onProgress?: (progress: ReencryptProgress) => void;
  logger?: Logger;
}

const attemptsPerRow = 3;

function keyLabel(stored: string): string {
  const parts = parseStoredValue(stored);

  return parts === undefined ? 'unknown' : `${parts.keyType}:${parts.keyName}`;
}

function increment(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

type Row = Record<string, unknown> & { id: string };

/** Rewrites one row's columns that are not under the current key; false on a lost race. */
async function reencryptRow(
  store: StateStore,
  cipher: Cipher,
  table: EncryptedTableName,
  row: Row,
  report: ReencryptTableReport,
  currentLabel: string,
): Promise<boolean> {
  const columns: readonly string[] = encryptedColumns[table];
  const guard: Record<string, unknown> = { id: row.id };
  const patch: Record<string, string> = {};
  const rewritten: string[] = [];

  for (const column of columns) {
    const stored = row[column];

    if (typeof stored !== 'string') {
      continue;
    }

    const label = keyLabel(stored);

    if (label === currentLabel) {
      report.current += 1;
      continue;
    }

    try {
      patch[column] = cipher.encrypt(cipher.decrypt(stored));
      guard[column] = stored;
      rewritten.push(label);
    } catch (error) {
      if (!(error instanceof DecryptionError)) {
        throw error;
      }

      increment(report.failed, label);
    }
  }

  if (rewritten.length === 0) {
    return true;
  }

  // Guarded: a row the server rewrote since we read it is left to the server's value.
  const where = guard as Where<never>;
  const changed = await store.update(table, where, patch as never);

  if (changed === 0) {
    return false;
  }

  rewritten.forEach((label) => increment(report.rewritten, label));

  return true;
}

async function reencryptTable(
  store: StateStore,
  cipher: Cipher,
  table: EncryptedTableName,
  options: ReencryptOptions,
  currentLabel: string,
): Promise<ReencryptTableReport> {
  const batchSize = options.batchSize ?? 200;
  const report: ReencryptTableReport = {
    table, rows: 0, rewritten: {}, current: 0, failed: {}, conflicts: 0,
  };
  const rowsTotal = await store.count(table);
  let lastId: string | undefined;

  for (;;) {
    const page = (await store.find(table, {
      where: (lastId === undefined ? {} : { id: { gt: lastId } }) as Where<never>,
      orderBy: [['id', 'asc']],
      limit: batchSize,
    })) as unknown as Row[];

    if (page.length === 0) {
      break;
    }

    for (const first of page) {
      let row: Row | undefined = first;

      for (let attempt = 1; row !== undefined; attempt += 1) {
        if (await reencryptRow(store, cipher, table, row, report, currentLabel)) {
          break;
        }

        if (attempt === attemptsPerRow) {
          report.conflicts += 1;
          break;
        }

        row = (await store.get(table, first.id)) as unknown as Row | undefined;
      }

      report.rows += 1;
    }

    lastId = page[page.length - 1].id;
    options.onProgress?.({ table, rowsDone: report.rows, rowsTotal });
  }

  return report;
}

/**
 * Rewrites every encrypted value of every table with the cipher's current (first) key, row
 * by row with guarded updates, so it is safe while the server serves and safe to repeat.
 * Values no key can decrypt are counted and left alone.
 */
export async function reencryptStore(
  store: StateStore,
  cipher: Cipher,
  options: ReencryptOptions = {},
): Promise<ReencryptTableReport[]> {
  const log = options.logger ?? silentLogger;
  const currentLabel = keyLabel(cipher.encrypt(''));
  const reports: ReencryptTableReport[] = [];

  for (const table of Object.keys(encryptedColumns) as EncryptedTableName[]) {
    const report = await reencryptTable(store, cipher, table, options, currentLabel);
    log.info({ ...report }, 'table re-encrypted');
    reports.push(report);
  }

  return reports;
}
