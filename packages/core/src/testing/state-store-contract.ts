import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FindOptions, StateStore } from '../ports/state-store.js';
import type {
  FleetRecord,
  InstanceRecord,
  JobRecord,
  ProjectRecord,
  RunRecord,
  UserRecord,
} from '../records.js';
import { DuplicateKeyError } from '../stores/errors.js';

const baseTime = Date.UTC(2026, 0, 2, 3, 4, 5, 678);

function userRow(overrides: Partial<UserRecord> = {}): UserRecord {
  const id = randomUUID();
  return {
    id,
    name: `user-${id.slice(0, 8)}`,
    createdAt: baseTime,
    token: `enc:identity:noname:${id}`,
    tokenHash: `hash-${id}`,
    globalRole: 'user',
    email: null,
    active: true,
    deleted: false,
    originalName: null,
    sshPublicKey: null,
    sshPrivateKey: null,
    ...overrides,
  };
}

function projectRow(overrides: Partial<ProjectRecord> = {}): ProjectRecord {
  const id = randomUUID();
  return {
    id,
    name: `project-${id.slice(0, 8)}`,
    createdAt: baseTime,
    ownerId: randomUUID(),
    isPublic: false,
    templatesRepo: null,
    deleted: false,
    originalName: null,
    sshPublicKey: null,
    sshPrivateKey: null,
    ...overrides,
  };
}

function fleetRow(overrides: Partial<FleetRecord> = {}): FleetRecord {
  const id = randomUUID();
  return {
    id,
    projectId: randomUUID(),
    name: `fleet-${id.slice(0, 8)}`,
    createdAt: baseTime,
    lastProcessedAt: baseTime,
    deleted: false,
    deletedAt: null,
    status: 'active',
    statusMessage: null,
    spec: { configuration: { nodes: { min: 0, max: 2 } } },
    consolidationAttempt: 0,
    lockToken: null,
    lockOwner: null,
    lockExpiresAt: null,
    ...overrides,
  };
}

function runRow(overrides: Partial<RunRecord> = {}): RunRecord {
  const id = randomUUID();
  return {
    id,
    projectId: randomUUID(),
    userId: randomUUID(),
    repoId: null,
    fleetId: null,
    runName: `run-${id.slice(0, 8)}`,
    submittedAt: baseTime,
    lastProcessedAt: baseTime,
    status: 'submitted',
    statusMessage: null,
    terminationReason: null,
    resubmissionAttempt: 0,
    runSpec: { run_name: null, configuration: { type: 'task', commands: ['echo hi'] } },
    serviceSpec: null,
    priority: 0,
    deploymentNum: 0,
    deleted: false,
    nextTriggeredAt: null,
    lockToken: null,
    lockOwner: null,
    lockExpiresAt: null,
    ...overrides,
  };
}

function jobRow(overrides: Partial<JobRecord> = {}): JobRecord {
  const id = randomUUID();
  return {
    id,
    projectId: randomUUID(),
    runId: randomUUID(),
    fleetId: null,
    runName: 'run',
    jobNum: 0,
    jobName: 'run-0-0',
    replicaNum: 0,
    submissionNum: 0,
    deploymentNum: 0,
    submittedAt: baseTime,
    lastProcessedAt: baseTime,
    finishedAt: null,
    status: 'submitted',
    statusMessage: null,
    terminationReason: null,
    terminationReasonMessage: null,
    exitStatus: null,
    jobSpec: { commands: ['echo hi'] },
    provisioningData: null,
    runtimeData: null,
    runnerTimestamp: null,
    disconnectedAt: null,
    instanceId: null,
    usedInstanceId: null,
    instanceAssigned: false,
    gracefulTerminationAttempts: null,
    removeAt: null,
    waitingMasterJob: false,
    lockToken: null,
    lockOwner: null,
    lockExpiresAt: null,
    ...overrides,
  };
}

function instanceRow(overrides: Partial<InstanceRecord> = {}): InstanceRecord {
  const id = randomUUID();
  return {
    id,
    projectId: randomUUID(),
    fleetId: null,
    name: `instance-${id.slice(0, 8)}`,
    instanceNum: 0,
    createdAt: baseTime,
    lastProcessedAt: baseTime,
    deleted: false,
    deletedAt: null,
    status: 'pending',
    unreachable: false,
    startedAt: null,
    finishedAt: null,
    backend: 'local',
    region: 'local',
    availabilityZone: null,
    price: 0,
    instanceType: { name: 'local', resources: { cpus: 2 } },
    offer: null,
    provisioningData: null,
    remoteConnectionInfo: null,
    profile: null,
    totalBlocks: 1,
    busyBlocks: 0,
    terminationPolicy: null,
    terminationIdleTime: 259200,
    terminationDeadline: null,
    terminationReason: null,
    terminationReasonMessage: null,
    lastJobProcessedAt: null,
    provisioningJobId: null,
    health: 'healthy',
    firstTerminationRetryAt: null,
    lockToken: null,
    lockOwner: null,
    lockExpiresAt: null,
    ...overrides,
  };
}

function sleep(millis: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, millis));
}

function ids(rows: readonly { id: string }[]): string[] {
  return rows.map((row) => row.id);
}

/**
 * The StateStore contract: every adapter runs it against a store from `open`, which must
 * start with no rows. The suite closes each store after its test.
 */
export function runStateStoreContract(name: string, open: () => Promise<StateStore>): void {
  describe(`StateStore contract: ${name}`, () => {
    let store: StateStore;
    let closed: boolean;

    beforeEach(async () => {
      store = await open();
      closed = false;
    });

    afterEach(async () => {
      if (!closed) {
        await store.close();
      }
    });

    describe('reads and writes', () => {
      it('gets an inserted row back whole, and undefined for a missing id', async () => {
        const user = userRow({ email: 'a@example.com', sshPublicKey: 'ssh-ed25519 AAAA' });
        await store.insert('users', user);

        expect(await store.get('users', user.id)).toEqual(user);
        expect(await store.get('users', randomUUID())).toBeUndefined();
      });

      it('inserts many rows at once and finds, counts and picks them', async () => {
        const runs = [1, 2, 3].map((priority) => runRow({ priority }));
        await store.insert('runs', runs);

        const found = await store.find('runs', { orderBy: [['priority', 'asc']] });
        expect(found).toEqual(runs);
        expect(await store.count('runs')).toBe(3);
        expect(await store.count('runs', { priority: { gte: 2 } })).toBe(2);
        expect(await store.findOne('runs', { where: { priority: 2 } })).toEqual(runs[1]);
        expect(await store.findOne('runs', { where: { priority: 9 } })).toBeUndefined();
        expect(await store.find('runs', { where: { priority: 9 } })).toEqual([]);
      });

      it('accepts an empty insert', async () => {
        await store.insert('runs', []);

        expect(await store.count('runs')).toBe(0);
      });

      it('updates the matching rows only and returns how many changed', async () => {
        const a = runRow({ status: 'submitted' });
        const b = runRow({ status: 'submitted' });
        const c = runRow({ status: 'running' });
        await store.insert('runs', [a, b, c]);

        const changed = await store.update(
          'runs',
          { status: 'submitted' },
          { status: 'provisioning', statusMessage: 'starting', lastProcessedAt: baseTime + 5 },
        );

        expect(changed).toBe(2);
        expect(await store.get('runs', a.id)).toEqual({
          ...a,
          status: 'provisioning',
          statusMessage: 'starting',
          lastProcessedAt: baseTime + 5,
        });
        expect(await store.get('runs', c.id)).toEqual(c);
        expect(await store.update('runs', { status: 'gone' }, { priority: 1 })).toBe(0);
      });

      it('leaves columns alone that the patch gives as undefined, and sets nulls', async () => {
        const job = jobRow({ statusMessage: 'waiting', exitStatus: 3 });
        await store.insert('jobs', job);

        await store.update('jobs', { id: job.id }, { statusMessage: undefined, exitStatus: null });

        expect(await store.get('jobs', job.id)).toEqual({ ...job, exitStatus: null });
      });

      it('deletes the matching rows and returns how many there were', async () => {
        const keep = fleetRow({ deleted: false });
        const drop = [fleetRow({ deleted: true }), fleetRow({ deleted: true })];
        await store.insert('fleets', [keep, ...drop]);

        expect(await store.delete('fleets', { deleted: true })).toBe(2);
        expect(await store.delete('fleets', { deleted: true })).toBe(0);
        expect(await store.find('fleets')).toEqual([keep]);
      });

      it('keeps stored rows apart from the objects callers pass or get', async () => {
        const fleet = fleetRow({ spec: { nested: { list: [1, 2] } } });
        const original = structuredClone(fleet);
        await store.insert('fleets', fleet);
        fleet.name = 'changed after insert';
        (fleet.spec as { nested: { list: number[] } }).nested.list.push(3);

        const read = (await store.get('fleets', fleet.id)) as FleetRecord;
        read.status = 'changed after get';
        (read.spec as { nested: { list: number[] } }).nested.list.push(4);
        const [found] = await store.find('fleets');
        found.statusMessage = 'changed after find';

        const patch = { spec: { nested: { list: [9] } } };
        await store.update('fleets', { id: fleet.id }, patch);
        patch.spec.nested.list.push(10);

        expect(await store.get('fleets', fleet.id)).toEqual({
          ...original,
          spec: { nested: { list: [9] } },
        });
      });
    });

    describe('filters', () => {
      let jobs: JobRecord[];

      beforeEach(async () => {
        jobs = [
          jobRow({ jobNum: 0, status: 'running', exitStatus: null, jobName: 'alpha' }),
          jobRow({ jobNum: 1, status: 'done', exitStatus: 0, jobName: 'beta' }),
          jobRow({ jobNum: 2, status: 'failed', exitStatus: 1, jobName: 'gamma' }),
          jobRow({ jobNum: 3, status: 'failed', exitStatus: 137, jobName: 'delta' }),
          jobRow({ jobNum: 4, status: 'submitted', exitStatus: null, jobName: 'epsilon' }),
        ];
        await store.insert('jobs', jobs);
      });

      async function jobNums(where: FindOptions<JobRecord>): Promise<number[]> {
        const rows = await store.find('jobs', { ...where, orderBy: [['jobNum', 'asc']] });
        return rows.map((row) => row.jobNum);
      }

      it('compares with eq and ne, where ne also matches nulls', async () => {
        expect(await jobNums({ where: { status: { eq: 'failed' } } })).toEqual([2, 3]);
        expect(await jobNums({ where: { status: { ne: 'failed' } } })).toEqual([0, 1, 4]);
        expect(await jobNums({ where: { exitStatus: { ne: 0 } } })).toEqual([0, 2, 3, 4]);
        expect(await jobNums({ where: { exitStatus: { eq: 0 } } })).toEqual([1]);
      });

      it('compares with in and notIn, where notIn also matches nulls', async () => {
        expect(await jobNums({ where: { status: { in: ['done', 'running'] } } })).toEqual([0, 1]);
        expect(await jobNums({ where: { status: { notIn: ['done', 'running'] } } })).toEqual([
          2, 3, 4,
        ]);
        expect(await jobNums({ where: { exitStatus: { notIn: [0, 1] } } })).toEqual([0, 3, 4]);
        expect(await jobNums({ where: { exitStatus: { in: [0, 137] } } })).toEqual([1, 3]);
      });

      it('treats an empty in as matching nothing and an empty notIn as matching all', async () => {
        expect(await jobNums({ where: { status: { in: [] } } })).toEqual([]);
        expect(await jobNums({ where: { status: { notIn: [] } } })).toEqual([0, 1, 2, 3, 4]);
      });

      it('compares numbers with lt, lte, gt and gte, never matching nulls', async () => {
        expect(await jobNums({ where: { exitStatus: { lt: 1 } } })).toEqual([1]);
        expect(await jobNums({ where: { exitStatus: { lte: 1 } } })).toEqual([1, 2]);
        expect(await jobNums({ where: { exitStatus: { gt: 1 } } })).toEqual([3]);
        expect(await jobNums({ where: { exitStatus: { gte: 1 } } })).toEqual([2, 3]);
      });

      it('compares text with lt, lte, gt and gte', async () => {
        expect(await jobNums({ where: { jobName: { lt: 'beta' } } })).toEqual([0]);
        expect(await jobNums({ where: { jobName: { lte: 'beta' } } })).toEqual([0, 1]);
        expect(await jobNums({ where: { jobName: { gt: 'delta' } } })).toEqual([2, 4]);
        expect(await jobNums({ where: { jobName: { gte: 'delta' } } })).toEqual([2, 3, 4]);
      });

      it('compares times', async () => {
        await store.update('jobs', { jobNum: { gte: 3 } }, { lastProcessedAt: baseTime + 1000 });

        expect(await jobNums({ where: { lastProcessedAt: { gt: baseTime } } })).toEqual([3, 4]);
        expect(await jobNums({ where: { lastProcessedAt: { lte: baseTime + 999 } } })).toEqual([
          0, 1, 2,
        ]);
        expect(await jobNums({ where: { lastProcessedAt: baseTime + 1000 } })).toEqual([3, 4]);
      });

      it('tests for null with isNull and with a plain null', async () => {
        expect(await jobNums({ where: { exitStatus: { isNull: true } } })).toEqual([0, 4]);
        expect(await jobNums({ where: { exitStatus: { isNull: false } } })).toEqual([1, 2, 3]);
        expect(await jobNums({ where: { exitStatus: null } })).toEqual([0, 4]);
      });

      it('requires every operator of one condition and every entry of a filter', async () => {
        expect(await jobNums({ where: { jobNum: { gt: 0, lt: 4, ne: 2 } } })).toEqual([1, 3]);
        expect(await jobNums({ where: { status: 'failed', exitStatus: { gt: 1 } } })).toEqual([
          3,
        ]);
        expect(await jobNums({ where: { status: 'failed', jobNum: 0 } })).toEqual([]);
      });

      it('compares booleans by plain value', async () => {
        await store.update('jobs', { jobNum: { in: [1, 3] } }, { instanceAssigned: true });

        expect(await jobNums({ where: { instanceAssigned: true } })).toEqual([1, 3]);
        expect(await jobNums({ where: { instanceAssigned: false } })).toEqual([0, 2, 4]);
        expect(await jobNums({ where: { instanceAssigned: { ne: true } } })).toEqual([0, 2, 4]);
      });

      it('matches $or when any alternative holds, together with the other entries', async () => {
        expect(
          await jobNums({ where: { $or: [{ status: 'done' }, { exitStatus: { gt: 100 } }] } }),
        ).toEqual([1, 3]);
        expect(
          await jobNums({
            where: { status: 'failed', $or: [{ jobNum: 2 }, { jobNum: 4 }] },
          }),
        ).toEqual([2]);
        expect(
          await jobNums({
            where: {
              $or: [{ status: 'running' }, { $or: [{ jobNum: 4 }, { exitStatus: 137 }] }],
            },
          }),
        ).toEqual([0, 3, 4]);
        expect(await jobNums({ where: { $or: [] } })).toEqual([]);
      });

      it('ignores entries whose value is undefined', async () => {
        expect(await jobNums({ where: { status: undefined, jobNum: { lt: 2 } } })).toEqual([0, 1]);
      });

      it('applies the same filters to count, update and delete', async () => {
        const where = { $or: [{ status: 'done' }, { exitStatus: { isNull: true } }] };

        expect(await store.count('jobs', where)).toBe(3);
        expect(await store.update('jobs', where, { statusMessage: 'seen' })).toBe(3);
        expect(await store.count('jobs', { statusMessage: 'seen' })).toBe(3);
        expect(await store.delete('jobs', where)).toBe(3);
        expect(await jobNums({})).toEqual([2, 3]);
      });
    });

    describe('order and pages', () => {
      it('orders by several columns in either direction', async () => {
        const runs = [
          runRow({ runName: 'a', priority: 1, submittedAt: baseTime + 3 }),
          runRow({ runName: 'b', priority: 2, submittedAt: baseTime + 1 }),
          runRow({ runName: 'c', priority: 1, submittedAt: baseTime + 1 }),
          runRow({ runName: 'd', priority: 2, submittedAt: baseTime + 2 }),
          runRow({ runName: 'e', priority: 0, submittedAt: baseTime + 2 }),
        ];
        await store.insert('runs', runs);

        const names = async (orderBy: [keyof RunRecord & string, 'asc' | 'desc'][]) =>
          (await store.find('runs', { orderBy })).map((run) => run.runName);

        expect(await names([['priority', 'desc'], ['submittedAt', 'asc']])).toEqual([
          'b', 'd', 'c', 'a', 'e',
        ]);
        expect(await names([['priority', 'asc'], ['submittedAt', 'desc']])).toEqual([
          'e', 'a', 'c', 'd', 'b',
        ]);
        expect(await names([['runName', 'desc']])).toEqual(['e', 'd', 'c', 'b', 'a']);
      });

      it('puts nulls first in ascending order and last in descending order', async () => {
        const jobs = [
          jobRow({ jobNum: 0, exitStatus: 5 }),
          jobRow({ jobNum: 1, exitStatus: null }),
          jobRow({ jobNum: 2, exitStatus: -1 }),
        ];
        await store.insert('jobs', jobs);

        const asc = await store.find('jobs', { orderBy: [['exitStatus', 'asc']] });
        const desc = await store.find('jobs', { orderBy: [['exitStatus', 'desc']] });

        expect(asc.map((job) => job.jobNum)).toEqual([1, 2, 0]);
        expect(desc.map((job) => job.jobNum)).toEqual([0, 2, 1]);
      });

      it('pages with limit and offset', async () => {
        const jobs = Array.from({ length: 7 }, (_, jobNum) => jobRow({ jobNum }));
        await store.insert('jobs', jobs);
        const page = async (limit?: number, offset?: number) =>
          (await store.find('jobs', { orderBy: [['jobNum', 'asc']], limit, offset })).map(
            (job) => job.jobNum,
          );

        expect(await page(3)).toEqual([0, 1, 2]);
        expect(await page(3, 3)).toEqual([3, 4, 5]);
        expect(await page(3, 6)).toEqual([6]);
        expect(await page(3, 9)).toEqual([]);
        expect(await page(undefined, 5)).toEqual([5, 6]);
        expect(await page(0)).toEqual([]);
        const first = await store.findOne('jobs', { orderBy: [['jobNum', 'desc']], offset: 1 });
        expect(first?.jobNum).toBe(5);
      });

      // A client may send any integer limit (instances/list bounds none): past what the
      // database takes (bigint, 2^63) it means every row, and a negative one none.
      it('takes a limit past what databases take as every row, and a negative one as none',
        async () => {
          const jobs = Array.from({ length: 7 }, (_, jobNum) => jobRow({ jobNum }));
          await store.insert('jobs', jobs);
          const page = async (limit: number, offset?: number) =>
            (await store.find('jobs', { orderBy: [['jobNum', 'asc']], limit, offset })).map(
              (job) => job.jobNum,
            );

          expect(await page(1e20)).toEqual([0, 1, 2, 3, 4, 5, 6]);
          expect(await page(Number.MAX_VALUE, 5)).toEqual([5, 6]);
          expect(await page(-5)).toEqual([]);
        });
    });

    describe('values', () => {
      it('round-trips json values of every shape, and null', async () => {
        const specs: unknown[] = [
          { a: 1, b: [true, null, 'x'], c: { d: { e: 1.5 } } },
          [1, 'two', { three: 3 }],
          'just a string',
          42,
          true,
          { unicode: 'héllo ✓ 日本', quotes: '"\'\\', empty: {} },
          [],
        ];
        const fleets = specs.map((spec) => fleetRow({ spec }));
        const empty = fleetRow({ spec: null });
        await store.insert('fleets', [...fleets, empty]);

        for (const fleet of [...fleets, empty]) {
          expect((await store.get('fleets', fleet.id))?.spec).toEqual(fleet.spec);
        }
      });

      it('round-trips booleans, reals, integers and times, and their nulls', async () => {
        const full = instanceRow({
          unreachable: true,
          deleted: false,
          price: 1.2345,
          totalBlocks: null,
          busyBlocks: 3,
          terminationIdleTime: -1,
          startedAt: baseTime + 1,
          finishedAt: 4_102_444_800_123,
          deletedAt: 0,
        });
        const empty = instanceRow({ price: null, startedAt: null, unreachable: false });
        await store.insert('instances', [full, empty]);

        expect(await store.get('instances', full.id)).toEqual(full);
        expect(await store.get('instances', empty.id)).toEqual(empty);

        const job = jobRow({ runnerTimestamp: 1_764_000_000_123_456, exitStatus: -9 });
        await store.insert('jobs', job);
        const read = await store.get('jobs', job.id);
        expect(read?.runnerTimestamp).toBe(1_764_000_000_123_456);
        expect(read?.exitStatus).toBe(-9);
        expect(typeof read?.submittedAt).toBe('number');
      });

      it('round-trips reals that have no short decimal form', async () => {
        const instance = instanceRow({ price: 0.1 + 0.2 });
        await store.insert('instances', instance);

        expect((await store.get('instances', instance.id))?.price).toBe(0.1 + 0.2);
      });
    });

    describe('keys', () => {
      it('rejects a duplicate primary key and adds none of the rows', async () => {
        const existing = runRow();
        await store.insert('runs', existing);

        const batch = [runRow(), runRow(), runRow({ id: existing.id, runName: 'other' })];
        await expect(store.insert('runs', batch)).rejects.toBeInstanceOf(DuplicateKeyError);

        expect(await store.count('runs')).toBe(1);
        expect(await store.get('runs', existing.id)).toEqual(existing);
      });

      it('rejects a duplicate primary key inside one batch', async () => {
        const run = runRow();

        await expect(store.insert('runs', [run, { ...run }])).rejects.toBeInstanceOf(
          DuplicateKeyError,
        );
        expect(await store.count('runs')).toBe(0);
      });

      it('rejects a second user with the same name or token hash', async () => {
        const user = userRow({ name: 'admin' });
        await store.insert('users', user);

        await expect(store.insert('users', userRow({ name: 'admin' }))).rejects.toBeInstanceOf(
          DuplicateKeyError,
        );
        await expect(
          store.insert('users', userRow({ tokenHash: user.tokenHash })),
        ).rejects.toBeInstanceOf(DuplicateKeyError);
        await expect(
          store.update('users', { id: user.id }, { name: 'admin' }),
        ).resolves.toBe(1);

        const other = userRow({ name: 'other' });
        await store.insert('users', other);
        await expect(
          store.update('users', { id: other.id }, { name: 'admin' }),
        ).rejects.toBeInstanceOf(DuplicateKeyError);
        expect((await store.get('users', other.id))?.name).toBe('other');
      });

      it('rejects a second project with the same name', async () => {
        await store.insert('projects', projectRow({ name: 'main' }));

        await expect(
          store.insert('projects', projectRow({ name: 'main' })),
        ).rejects.toBeInstanceOf(DuplicateKeyError);
        expect(await store.count('projects')).toBe(1);
      });
    });

    describe('transactions', () => {
      it('commits the work and returns its result', async () => {
        const run = runRow();

        const result = await store.transaction(async (tx) => {
          await tx.insert('runs', run);
          await tx.update('runs', { id: run.id }, { status: 'running' });
          return (await tx.get('runs', run.id))?.status;
        });

        expect(result).toBe('running');
        expect((await store.get('runs', run.id))?.status).toBe('running');
      });

      it('rolls every write back when the work throws, and rethrows', async () => {
        const kept = runRow();
        await store.insert('runs', kept);
        const failure = new Error('boom');

        await expect(
          store.transaction(async (tx) => {
            await tx.insert('runs', runRow());
            await tx.update('runs', { id: kept.id }, { status: 'failed' });
            await tx.delete('runs', { id: kept.id, status: 'never' });
            expect(await tx.count('runs')).toBe(2);
            throw failure;
          }),
        ).rejects.toBe(failure);

        expect(await store.find('runs')).toEqual([kept]);
      });

      it('rolls back when a write inside fails', async () => {
        const user = userRow();
        await store.insert('users', user);

        await expect(
          store.transaction(async (tx) => {
            await tx.insert('users', userRow({ name: 'first' }));
            await tx.insert('users', userRow({ id: user.id }));
          }),
        ).rejects.toBeInstanceOf(DuplicateKeyError);

        expect(await store.find('users')).toEqual([user]);
      });
      it('lets a transaction go on after a duplicate key it caught', async () => {
        const user = userRow({ name: 'taken' });
        await store.insert('users', user);
        const other = userRow({ name: 'free' });

        await store.transaction(async (tx) => {
          await tx.insert('users', userRow({ name: 'before' }));
          await expect(
            tx.insert('users', [userRow({ name: 'fine' }), userRow({ name: 'taken' })]),
          ).rejects.toBeInstanceOf(DuplicateKeyError);
          await expect(
            tx.update('users', { name: 'before' }, { name: 'taken' }),
          ).rejects.toBeInstanceOf(DuplicateKeyError);
          await tx.insert('users', other);
        });

        const names = (await store.find('users', { orderBy: [['name', 'asc']] })).map(
          (row) => row.name,
        );
        expect(names).toEqual(['before', 'free', 'taken']);
      });

      it('keeps concurrent writes of one transaction apart when one of them fails', async () => {
        await store.insert('projects', projectRow({ name: 'taken' }));

        await store.transaction(async (tx) => {
          const results = await Promise.allSettled([
            tx.insert('projects', projectRow({ name: 'a' })),
            tx.insert('projects', projectRow({ name: 'taken' })),
            tx.insert('projects', projectRow({ name: 'b' })),
          ]);
          expect(results.map((result) => result.status)).toEqual([
            'fulfilled',
            'rejected',
            'fulfilled',
          ]);
        });

        expect(await store.count('projects')).toBe(3);
      });
    });

    describe('claims', () => {
      const owner = 'JobSubmittedPipeline';
      const now = baseTime + 60_000;

      it('never hands one row to two concurrent claimers', async () => {
        const jobs = Array.from({ length: 40 }, (_, jobNum) => jobRow({ jobNum }));
        await store.insert('jobs', jobs);
        const tokens = Array.from({ length: 12 }, () => randomUUID());

        const batches = await Promise.all(
          tokens.map((token) =>
            store.claim('jobs', {
              where: { status: 'submitted' },
              orderBy: [['lastProcessedAt', 'asc']],
              limit: 5,
              owner,
              token,
              now,
              expiresAt: now + 40_000,
            }),
          ),
        );

        const claimed = batches.flatMap((batch) => ids(batch));
        expect(new Set(claimed).size).toBe(claimed.length);
        expect(claimed.length).toBe(40);
        expect(batches.every((batch) => batch.length <= 5)).toBe(true);

        for (const [index, batch] of batches.entries()) {
          for (const job of batch) {
            expect(job.lockToken).toBe(tokens[index]);
            const stored = await store.get('jobs', job.id);
            expect(stored).toMatchObject({
              lockToken: tokens[index],
              lockOwner: owner,
              lockExpiresAt: now + 40_000,
            });
          }
        }
      });

      it('takes free and expired leases, leaves live ones, honours where and limit', async () => {
        const free = runRow({ lastProcessedAt: baseTime + 3 });
        const expired = runRow({
          lastProcessedAt: baseTime + 1,
          lockToken: randomUUID(),
          lockOwner: 'RunPipeline',
          lockExpiresAt: now - 1,
        });
        const live = runRow({
          lastProcessedAt: baseTime,
          lockToken: randomUUID(),
          lockOwner: 'RunPipeline',
          lockExpiresAt: now + 1,
        });
        const endsNow = runRow({
          lastProcessedAt: baseTime,
          lockToken: randomUUID(),
          lockOwner: 'RunPipeline',
          lockExpiresAt: now,
        });
        const done = runRow({ status: 'done', lastProcessedAt: baseTime });
        const later = runRow({ lastProcessedAt: baseTime + 9 });
        await store.insert('runs', [free, expired, live, endsNow, done, later]);
        const request = {
          where: { status: { in: ['submitted', 'running'] } },
          orderBy: [['lastProcessedAt', 'asc']] as const,
          limit: 2,
          owner: 'RunPipeline',
          token: randomUUID(),
          now,
          expiresAt: now + 30_000,
        };

        const first = await store.claim('runs', request);
        expect(ids(first)).toEqual([expired.id, free.id]);
        expect(first[0]).toEqual({
          ...expired,
          lockToken: request.token,
          lockOwner: 'RunPipeline',
          lockExpiresAt: now + 30_000,
        });

        const second = await store.claim('runs', { ...request, token: randomUUID() });
        expect(ids(second)).toEqual([later.id]);
        expect(await store.claim('runs', { ...request, token: randomUUID() })).toEqual([]);
        expect(await store.get('runs', live.id)).toEqual(live);
        expect(await store.get('runs', done.id)).toEqual(done);
      });

      it('lets the caller filter on the lease owner', async () => {
        const mine = instanceRow({ lockOwner: 'InstancePipeline' });
        const theirs = instanceRow({ lockOwner: 'FleetPipeline:abc' });
        const unowned = instanceRow();
        await store.insert('instances', [mine, theirs, unowned]);

        const claimed = await store.claim('instances', {
          where: { $or: [{ lockOwner: null }, { lockOwner: 'InstancePipeline' }] },
          limit: 10,
          owner: 'InstancePipeline',
          token: randomUUID(),
          now,
          expiresAt: now + 30_000,
        });

        expect(new Set(ids(claimed))).toEqual(new Set([mine.id, unowned.id]));
      });

      it('claims nothing with a limit of zero', async () => {
        await store.insert('fleets', fleetRow());

        const claimed = await store.claim('fleets', {
          where: {},
          limit: 0,
          owner: 'FleetPipeline',
          token: randomUUID(),
          now,
          expiresAt: now + 20_000,
        });

        expect(claimed).toEqual([]);
        expect((await store.find('fleets'))[0].lockToken).toBeNull();
      });

      it('renews only the leases still held with the same token', async () => {
        const held = jobRow();
        const lost = jobRow();
        const other = jobRow({ lockToken: 'x', lockOwner: owner, lockExpiresAt: now + 5 });
        await store.insert('jobs', [held, lost, other]);
        const token = randomUUID();
        await store.claim('jobs', {
          where: { id: { in: [held.id, lost.id] } },
          limit: 10,
          owner,
          token,
          now,
          expiresAt: now + 1000,
        });
        // Another worker took `lost` over after its lease ran out.
        await store.update('jobs', { id: lost.id }, { lockToken: 'taken-over' });

        const renewed = await store.renewLeases(
          'jobs',
          [
            { id: held.id, token },
            { id: lost.id, token },
            { id: other.id, token },
            { id: randomUUID(), token },
          ],
          now + 99_000,
        );

        expect(renewed).toEqual([held.id]);
        expect((await store.get('jobs', held.id))?.lockExpiresAt).toBe(now + 99_000);
        expect((await store.get('jobs', lost.id))?.lockExpiresAt).toBe(now + 1000);
        expect((await store.get('jobs', other.id))?.lockExpiresAt).toBe(now + 5);
        expect(await store.renewLeases('jobs', [], now)).toEqual([]);
      });

      it('changes nothing on a guarded update with a stale token', async () => {
        const job = jobRow();
        await store.insert('jobs', job);
        const [first] = await store.claim('jobs', {
          where: { id: job.id },
          limit: 1,
          owner,
          token: 'first',
          now,
          expiresAt: now + 10,
        });
        const [second] = await store.claim('jobs', {
          where: { id: job.id },
          limit: 1,
          owner,
          token: 'second',
          now: now + 20,
          expiresAt: now + 40_000,
        });
        expect(first.lockToken).toBe('first');
        expect(second.lockToken).toBe('second');

        const stale = await store.update(
          'jobs',
          { id: job.id, lockToken: 'first' },
          { status: 'provisioning', lockToken: null },
        );
        const fresh = await store.update(
          'jobs',
          { id: job.id, lockToken: 'second' },
          { status: 'running', lockToken: null, lockExpiresAt: null, lockOwner: null },
        );

        expect(stale).toBe(0);
        expect(fresh).toBe(1);
        expect(await store.get('jobs', job.id)).toEqual({ ...job, status: 'running' });
      });
    });

    describe('named locks', () => {
      it('lets one holder of a name in at a time and returns the work result', async () => {
        let inside = 0;
        let mostInside = 0;
        const order: number[] = [];

        const results = await Promise.all(
          Array.from({ length: 5 }, (_, index) =>
            store.withLock('server_init', async () => {
              inside += 1;
              mostInside = Math.max(mostInside, inside);
              await sleep(20);
              order.push(index);
              inside -= 1;
              return index * 10;
            }),
          ),
        );

        expect(mostInside).toBe(1);
        expect(order.sort()).toEqual([0, 1, 2, 3, 4]);
        expect(results).toEqual([0, 10, 20, 30, 40]);
      });

      it('releases the lock when the work throws', async () => {
        await expect(
          store.withLock('run_names_main', async () => {
            throw new Error('inside');
          }),
        ).rejects.toThrow('inside');

        await expect(store.withLock('run_names_main', async () => 'again')).resolves.toBe('again');
      });

      it('does not make different names wait for each other', async () => {
        let release!: () => void;
        const held = new Promise<void>((resolve) => {
          release = resolve;
        });
        const first = store.withLock('fleet_names_a', () => held);

        await expect(store.withLock('fleet_names_b', async () => 'b')).resolves.toBe('b');
        release();
        await first;
      });

      it('lets the work use the store while it holds the lock', async () => {
        const run = runRow();

        await store.withLock('run_names_x', async () => {
          await store.transaction((tx) => tx.insert('runs', run));
        });

        expect(await store.get('runs', run.id)).toEqual(run);
      });
    });

    describe('close', () => {
      it('rejects every call after close', async () => {
        await store.insert('runs', runRow());
        await store.close();
        closed = true;

        await expect(store.get('runs', randomUUID())).rejects.toThrow();
        await expect(store.find('runs')).rejects.toThrow();
        await expect(store.count('runs')).rejects.toThrow();
        await expect(store.insert('runs', runRow())).rejects.toThrow();
        await expect(store.update('runs', {}, { priority: 1 })).rejects.toThrow();
        await expect(store.delete('runs', {})).rejects.toThrow();
        await expect(store.transaction(async () => 1)).rejects.toThrow();
        await expect(
          store.claim('runs', {
            where: {},
            limit: 1,
            owner: 'RunPipeline',
            token: 't',
            now: 0,
            expiresAt: 1,
          }),
        ).rejects.toThrow();
        await expect(store.renewLeases('runs', [], 1)).rejects.toThrow();
        await expect(store.withLock('x', async () => 1)).rejects.toThrow();
      });
    });
  });
}
