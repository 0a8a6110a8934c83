import { randomUUID } from 'node:crypto';
import { DuplicateKeyError } from '@dstack/core';
import type { JobRecord, StateStore } from '@dstack/core';
import {
  advisoryLockId,
  createPostgresStateStore,
  migrateToLatest,
} from '@dstack/storage-postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestSchema } from './test-schema.js';
import type { TestSchema } from './test-schema.js';

let schema: TestSchema;
let replicas: StateStore[];

beforeAll(async () => {
  schema = await createTestSchema('replicas');
  const pool = schema.pool();
  await migrateToLatest(pool);
  await pool.end();
  replicas = [1, 2, 3].map(() =>
    createPostgresStateStore({ pool: schema.pool(4), lockRetryMillis: 10 }),
  );
});

afterAll(async () => {
  await Promise.all((replicas ?? []).map((store) => store.close()));
  await schema?.drop();
});

function job(jobNum: number): JobRecord {
  return {
    id: randomUUID(), projectId: 'p', runId: 'r', fleetId: null, runName: 'run', jobNum,
    jobName: `run-0-${jobNum}`, replicaNum: 0, submissionNum: 0, deploymentNum: 0,
    submittedAt: 1000, lastProcessedAt: 1000 + jobNum, finishedAt: null, status: 'submitted',
    statusMessage: null, terminationReason: null, terminationReasonMessage: null,
    exitStatus: null, jobSpec: {}, provisioningData: null, runtimeData: null,
    runnerTimestamp: null, disconnectedAt: null, instanceId: null, usedInstanceId: null,
    instanceAssigned: false, gracefulTerminationAttempts: null, removeAt: null,
    waitingMasterJob: false, lockToken: null, lockOwner: null, lockExpiresAt: null,
  };
}

function sleep(millis: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, millis));
}

describe('postgres replicas', () => {
  it('computes advisory lock ids as the original does', () => {
    // Reference values from Python: int(sha256(name).hexdigest(), 16) % 2**63.
    expect(advisoryLockId('migrations')).toBe('8499576275731843811');
    expect(advisoryLockId('server_init')).toBe('7047472480246918123');
  });

  it('shares claimed rows between replicas without handing one row out twice', async () => {
    const jobs = Array.from({ length: 60 }, (_, jobNum) => job(jobNum));
    await replicas[0].insert('jobs', jobs);
    const now = 10_000;

    const rounds = await Promise.all(
      replicas.flatMap((store, replica) =>
        [0, 1, 2, 3].map(async (worker) => {
          const token = `${replica}-${worker}`;
          const claimed = await store.claim('jobs', {
            where: { status: 'submitted' },
            orderBy: [['lastProcessedAt', 'asc']],
            limit: 7,
            owner: 'JobSubmittedPipeline',
            token,
            now,
            expiresAt: now + 40_000,
          });
          return claimed.map((row) => ({ id: row.id, token }));
        }),
      ),
    );

    const claimed = rounds.flat();
    expect(new Set(claimed.map((item) => item.id)).size).toBe(claimed.length);
    expect(claimed.length).toBe(60);

    const stored = await replicas[1].find('jobs', { where: { lockToken: { isNull: false } } });
    const tokenOf = new Map(claimed.map((item) => [item.id, item.token]));
    expect(stored.every((row) => row.lockToken === tokenOf.get(row.id))).toBe(true);
  });

  it('lets a second replica take rows once the first replica leases expire', async () => {
    await replicas[0].delete('jobs', {});
    await replicas[0].insert('jobs', [job(0), job(1)]);
    const request = {
      where: {},
      limit: 10,
      owner: 'JobRunningPipeline',
      now: 50_000,
      expiresAt: 80_000,
    };

    const first = await replicas[0].claim('jobs', { ...request, token: 'dead-replica' });
    const during = await replicas[1].claim('jobs', { ...request, token: 'live', now: 79_999 });
    const after = await replicas[1].claim('jobs', { ...request, token: 'live', now: 80_001 });

    expect(first).toHaveLength(2);
    expect(during).toEqual([]);
    expect(after.map((row) => row.lockToken)).toEqual(['live', 'live']);
  });

  it('keeps a named lock exclusive across replicas', async () => {
    let inside = 0;
    let mostInside = 0;
    const work = async (): Promise<void> => {
      inside += 1;
      mostInside = Math.max(mostInside, inside);
      await sleep(30);
      inside -= 1;
    };

    await Promise.all(
      replicas.flatMap((store) => [
        store.withLock('server_init', work),
        store.withLock('server_init', work),
      ]),
    );

    expect(mostInside).toBe(1);
  });

  it('holds the named lock as a Postgres advisory lock while the work runs', async () => {
    const held = await replicas[0].withLock('gateway_tunnels', async () => {
      const { rows } = await schema.admin.query<{ locked: boolean }>(
        'select pg_try_advisory_lock($1::bigint) as locked',
        [advisoryLockId('gateway_tunnels')],
      );
      return rows[0].locked;
    });

    expect(held).toBe(false);
  });

  it('says which unique key a duplicate broke, and returns numbers for bigints', async () => {
    const user = {
      id: randomUUID(), name: 'admin', createdAt: 1_764_000_000_001, token: 't',
      tokenHash: 'h', globalRole: 'admin' as const, email: null, active: true,
      deleted: false, originalName: null, sshPublicKey: null, sshPrivateKey: null,
    };
    await replicas[0].insert('users', user);

    const duplicate = replicas[1].insert('users', { ...user, id: randomUUID(), tokenHash: 'x' });
    await expect(duplicate).rejects.toBeInstanceOf(DuplicateKeyError);
    await expect(duplicate).rejects.toMatchObject({ table: 'users', columns: ['name'] });
    expect(await replicas[2].count('users')).toBe(1);
    expect(await replicas[2].get('users', user.id)).toEqual(user);
  });
});
