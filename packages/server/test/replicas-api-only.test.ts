import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '@dstack/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildFastBackend,
  createTestDatabase,
  fastOnlyConfig,
  readFastEvents,
  requireBuiltBin,
  startReplica,
  stopAllReplicas,
  waitFor,
} from './fixtures-replicas/replica-cluster.js';
import type { TestDatabase } from './fixtures-replicas/replica-cluster.js';

let root: string;
let db: TestDatabase;
let stateDir: string;
let pluginPath: string;

function env(extra: Record<string, string> = {}): Record<string, string> {
  return {
    DSTACK_DATABASE_URL: db.url,
    DSTACK_SERVER_ADMIN_TOKEN: 'api-only-admin-token',
    DSTACK_SERVER_BACKEND_PLUGINS: pluginPath,
    DSTACK_TEST_FAST_BACKEND_DIR: stateDir,
    DSTACK_TEST_FAST_BACKEND_JOB_MILLIS: '200',
    ...extra,
  };
}

async function statuses(): Promise<string[]> {
  const rows = await db.query<{ status: string }>('select status from runs order by run_name');
  return rows.map((row) => row.status);
}

beforeAll(async () => {
  requireBuiltBin();
  root = await mkdtemp(join(tmpdir(), 'dstack-api-only-'));
  stateDir = join(root, 'fast-state');
  pluginPath = await buildFastBackend(join(root, 'plugin'));
  db = await createTestDatabase('api_only');
}, 60_000);

afterAll(async () => {
  await stopAllReplicas();
  await db?.drop();
  await rm(root, { recursive: true, force: true });
}, 60_000);

describe('DSTACK_SERVER_BACKGROUND_PROCESSING_DISABLED', () => {
  it('makes an API-only replica, even when set to an empty value; a full one does the work',
    async () => {
      // The original treats the variable as set or not: an empty value still disables.
      const apiOnly = await startReplica({
        name: 'api-only',
        serverDir: join(root, 'api-only'),
        env: env({ DSTACK_SERVER_BACKGROUND_PROCESSING_DISABLED: '' }),
        config: fastOnlyConfig,
      });
      const client = createClient({ url: apiOnly.url, token: apiOnly.token });
      await client.apply({ type: 'fleet', name: 'fast-fleet', nodes: '0..', backends: ['fast'] });

      for (const num of [1, 2, 3]) {
        await client.apply({ type: 'task', name: `quiet-${num}`, commands: ['true'] });
      }

      await new Promise((resolve) => setTimeout(resolve, 4000));
      expect(await statuses()).toEqual(['submitted', 'submitted', 'submitted']);
      expect(await readFastEvents(stateDir)).toEqual([]);

      const worker = await startReplica({
        name: 'worker',
        serverDir: join(root, 'worker'),
        env: env(),
        config: fastOnlyConfig,
      });
      await waitFor('the runs done', async () => {
        const now = await statuses();
        return now.every((status) => status === 'done') ? true : undefined;
      }, { timeoutMillis: 60_000 }).catch(async (error: unknown) => {
        const jobs = await db.query('select run_name, status, termination_reason_message ' +
          'from jobs');
        throw new Error(`${String(error)}: ${JSON.stringify(jobs)}\n${worker.output()}`);
      });

      const starts = (await readFastEvents(stateDir)).filter((e) => e.event === 'start');
      expect(starts.map((event) => event.runName).sort())
        .toEqual(['quiet-1', 'quiet-2', 'quiet-3']);
      expect(new Set(starts.map((event) => event.pid))).toEqual(new Set([worker.child.pid]));
      const runs = await client.request<{ status: string }[]>('/api/runs/list', {
        project_name: 'main',
      });
      expect(runs.map((run) => run.status)).toEqual(['done', 'done', 'done']);
    }, 120_000);
});
