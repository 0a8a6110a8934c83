import {
  buildJobSpecs,
  createCipher,
  createMemoryLogStore,
  defaultFleetSpec,
  defaultPermissions,
  newId,
  newJobRecord,
  silentLogger,
  startScheduler,
} from '@dstack/core';
import type {
  BackendProvider,
  CoreContext,
  InstanceAgent,
  LeasedTableName,
  RunRecord,
  RunSpec,
  Scheduler,
  StateStore,
} from '@dstack/core';
import { contractRequirements, createFakeBackend } from '@dstack/core/testing';
import { createPostgresStateStore, migrateToLatest } from '@dstack/storage-postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestSchema } from './test-schema.js';
import type { TestSchema } from './test-schema.js';

// Three server replicas in one process: each has its own pool and scheduler over one schema.
// They share what replicas share in production: the database, the backend's instances (the
// fake backend stands for the cloud) and an external log store.
let schema: TestSchema;
const stores: StateStore[] = [];
const schedulers: Scheduler[] = [];
const backend = createFakeBackend();
const submits = new Map<string, { count: number; firstAt: number }>();
const claimedBy = new Map<string, Set<number>>();
const logs = createMemoryLogStore();

const intervals = {
  jobsSubmitted: 20, jobsProvisioning: 20, jobsRunning: 20, jobsTerminating: 20,
  runsActive: 20, runsTerminating: 20, instancesPending: 20, instancesActive: 20, fleets: 20,
};

function countingProvider(provider: BackendProvider): BackendProvider {
  return {
    ...provider,
    agent: (...args: Parameters<BackendProvider['agent']>) => {
      const agent = provider.agent(...args) as InstanceAgent;
      return {
        ...agent,
        submit: async (job) => {
          const seen = submits.get(job.jobSubmissionId);
          submits.set(job.jobSubmissionId, {
            count: (seen?.count ?? 0) + 1,
            firstAt: seen?.firstAt ?? Date.now(),
          });
          return agent.submit(job);
        },
      } satisfies InstanceAgent;
    },
  };
}

/** Records which replica claimed which row, to show how the work was shared. */
function recordingClaims(store: StateStore, replica: number): StateStore {
  const claim = store.claim.bind(store);
  store.claim = async (table: LeasedTableName, request) => {
    const rows = await claim(table, request as never);

    for (const row of rows) {
      const seen = claimedBy.get(row.id) ?? new Set<number>();
      seen.add(replica);
      claimedBy.set(row.id, seen);
    }

    return rows as never;
  };
  return store;
}

function contextFor(store: StateStore): CoreContext {
  return {
    store,
    logs,
    cipher: createCipher(),
    providers: new Map([['fake', countingProvider(backend.provider)]]),
    logger: silentLogger,
    settings: {
      serverDir: '/nonexistent',
      serverVersion: null,
      defaultPermissions: { ...defaultPermissions },
      userProjectQuota: 10,
    },
    now: () => Date.now(),
  };
}

beforeAll(async () => {
  schema = await createTestSchema('three_replicas');
  const pool = schema.pool();
  await migrateToLatest(pool);
  await pool.end();

  for (let replica = 0; replica < 3; replica += 1) {
    const store = createPostgresStateStore({ pool: schema.pool(6), lockRetryMillis: 10 });
    stores.push(recordingClaims(store, replica));
  }
});

afterAll(async () => {
  await Promise.all(schedulers.map((scheduler) => scheduler.stop()));
  await Promise.all(stores.map((store) => store.close()));
  await schema?.drop();
});

async function until<T>(check: () => Promise<T | undefined>, timeoutMillis: number): Promise<T> {
  const deadline = Date.now() + timeoutMillis;

  for (;;) {
    const value = await check();

    if (value !== undefined) {
      return value;
    }

    if (Date.now() > deadline) {
      throw new Error('timed out waiting');
    }

    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

let userId: string;
let projectId: string;

async function submitRun(name: string, lease?: { token: string; expiresAt: number }) {
  const runSpec: RunSpec = {
    run_name: name,
    repo_id: 'none',
    repo_data: { repo_type: 'virtual' },
    configuration: { type: 'task', commands: [`echo one ${name}`, `echo two ${name}`] },
    profile: null,
  };
  const t = Date.now();
  const run: RunRecord = {
    id: newId(), projectId, userId, repoId: null, fleetId: null, runName: name, submittedAt: t,
    lastProcessedAt: t, status: 'submitted', statusMessage: 'submitted',
    terminationReason: null, resubmissionAttempt: 0, runSpec, serviceSpec: null, priority: 0,
    deploymentNum: 0, deleted: false, nextTriggeredAt: null, lockToken: null, lockOwner: null,
    lockExpiresAt: null,
  };
  const jobs = buildJobSpecs(runSpec, { runName: name, requirements: contractRequirements(1) })
    .map((jobSpec) => newJobRecord(run, jobSpec, 0, t))
    .map((job) =>
      lease
        ? { ...job, lockToken: lease.token, lockOwner: 'JobSubmittedPipeline',
          lockExpiresAt: lease.expiresAt }
        : job,
    );

  await stores[0].transaction(async (tx) => {
    await tx.insert('runs', run);
    await tx.insert('jobs', jobs);
  });

  return run;
}

async function finish(runs: readonly RunRecord[]): Promise<RunRecord[]> {
  const ids = runs.map((run) => run.id);

  return until(async () => {
    const rows = await stores[1].find('runs', { where: { id: { in: ids } } });
    const ended = rows.every((row) => ['done', 'failed', 'terminated'].includes(row.status));
    return ended ? rows : undefined;
  }, 25_000);
}

async function jobLog(run: RunRecord, jobId: string): Promise<string> {
  const page = await logs.poll(
    { projectName: 'main', runName: run.runName, jobSubmissionId: jobId, producer: 'job' },
    { limit: 1000 },
  );
  return page.events.map((event) => event.message).join('');
}

describe('three server replicas on one Postgres database', () => {
  beforeAll(async () => {
    const [store] = stores;
    const now = Date.now();
    userId = newId();
    projectId = newId();
    await store.insert('users', {
      id: userId, name: 'alice', createdAt: now, token: 'x', tokenHash: 'x',
      globalRole: 'admin', email: null, active: true, deleted: false, originalName: null,
      sshPublicKey: 'ssh-rsa AAA', sshPrivateKey: null,
    });
    await store.insert('projects', {
      id: projectId, name: 'main', createdAt: now, ownerId: userId, isPublic: false,
      templatesRepo: null, deleted: false, originalName: null, sshPublicKey: null,
      sshPrivateKey: null,
    });
    await store.insert('backends', {
      id: newId(), projectId, type: 'fake', config: {}, auth: null, sourceConfig: {},
      sourceAuth: null,
    });
    const spec = defaultFleetSpec(20);
    spec.configuration = { ...spec.configuration, backends: ['fake'] };
    await store.insert('fleets', {
      id: newId(), projectId, name: String(spec.configuration.name), createdAt: now,
      lastProcessedAt: now, deleted: false, deletedAt: null, status: 'active',
      statusMessage: null, spec, consolidationAttempt: 0, lockToken: null, lockOwner: null,
      lockExpiresAt: null,
    });

    for (const replica of stores) {
      schedulers.push(
        startScheduler(contextFor(replica), {
          intervals,
          leaseMillis: 3000,
          maxIdleMillis: 20,
          stopGraceMillis: 300,
        }),
      );
    }
  });

  it('run every job exactly once and store its logs once', async () => {
    const runs: RunRecord[] = [];

    for (let index = 0; index < 9; index += 1) {
      runs.push(await submitRun(`shared-${index}`));
    }

    const finished = await finish(runs);

    expect(finished.map((run) => run.status)).toEqual(runs.map(() => 'done'));
    const jobs = await stores[2].find('jobs', { where: { runId: { in: runs.map((r) => r.id) } } });
    expect(jobs).toHaveLength(9);
    expect(jobs.every((job) => job.status === 'done' && job.exitStatus === 0)).toBe(true);
    expect(jobs.map((job) => submits.get(job.id)?.count)).toEqual(jobs.map(() => 1));

    for (const run of runs) {
      const job = jobs.find((row) => row.runId === run.id);
      expect(await jobLog(run, job!.id)).toBe(`one ${run.runName}\ntwo ${run.runName}\n`);
    }

    // Every replica polls every 20 ms, so more than one of them ends up with rows.
    const replicasThatWorked = new Set([...claimedBy.values()].flatMap((set) => [...set]));
    expect(replicasThatWorked.size).toBeGreaterThan(1);
  }, 40_000);

  it('take over the jobs of a replica that died once its leases expire', async () => {
    const expiresAt = Date.now() + 1500;
    const runs = [
      await submitRun('orphan-a', { token: 'dead-replica', expiresAt }),
      await submitRun('orphan-b', { token: 'dead-replica', expiresAt }),
    ];

    const finished = await finish(runs);

    expect(finished.map((run) => run.status)).toEqual(['done', 'done']);
    const jobs = await stores[0].find('jobs', { where: { runId: { in: runs.map((r) => r.id) } } });
    expect(jobs.map((job) => submits.get(job.id)?.count)).toEqual([1, 1]);
    expect(jobs.every((job) => (submits.get(job.id)?.firstAt ?? 0) >= expiresAt)).toBe(true);
  }, 40_000);
});
