import {
  buildJobSpecs,
  createCipher,
  createMemoryLogStore,
  createMemoryStateStore,
  defaultPermissions,
  defaultFleetSpec,
  newId,
  newJobRecord,
  silentLogger,
  startScheduler,
} from '@dstack/core';
import type {
  CoreContext,
  FleetSpec,
  JobRecord,
  ProjectRecord,
  Requirements,
  RunRecord,
  RunSpec,
  Scheduler,
  StartSchedulerOptions,
  UserRecord,
} from '@dstack/core';
import { contractRequirements, createFakeBackend } from '@dstack/core/testing';
import type { FakeBackend } from '@dstack/core/testing';

/** A memory-backed context with the fake backend configured in one project. */
export interface Harness {
  ctx: CoreContext;
  backend: FakeBackend;
  project: ProjectRecord;
  user: UserRecord;
  /** Moves the context's clock forward. */
  advance(millis: number): void;
  start(options?: StartSchedulerOptions): Scheduler;
  addFleet(spec?: Partial<FleetSpec['configuration']>): Promise<string>;
  submitRun(
    configuration: Record<string, unknown>,
    requirements?: Requirements,
  ): Promise<RunRecord>;
  jobsOf(runId: string): Promise<JobRecord[]>;
  /** Waits until `check` returns a value other than undefined, or fails after the timeout. */
  until<T>(check: () => Promise<T | undefined>, timeoutMillis?: number): Promise<T>;
  close(): Promise<void>;
}

/** Intervals short enough that a test takes well under a second per step. */
export const fastIntervals = {
  jobsSubmitted: 20,
  jobsProvisioning: 20,
  jobsRunning: 20,
  jobsTerminating: 20,
  runsActive: 20,
  runsRunning: 20,
  runsTerminating: 20,
  instancesPending: 20,
  instancesActive: 20,
  instancesBusy: 20,
  fleets: 20,
};

/** Builds the harness: user, project, the `fake` backend, nothing else. */
export async function createHarness(): Promise<Harness> {
  const store = createMemoryStateStore();
  const backend = createFakeBackend();
  let offset = 0;
  const schedulers: Scheduler[] = [];
  const ctx: CoreContext = {
    store,
    logs: createMemoryLogStore(),
    cipher: createCipher(),
    providers: new Map([['fake', backend.provider]]),
    logger: silentLogger,
    settings: {
      serverDir: '/nonexistent',
      serverVersion: null,
      defaultPermissions: { ...defaultPermissions },
      userProjectQuota: 10,
    },
    now: () => Date.now() + offset,
  };
  const now = ctx.now();
  const user: UserRecord = {
    id: newId(), name: 'alice', createdAt: now, token: 'x', tokenHash: 'x', globalRole: 'admin',
    email: null, active: true, deleted: false, originalName: null, sshPublicKey: 'ssh-rsa AAA',
    sshPrivateKey: null,
  };
  const project: ProjectRecord = {
    id: newId(), name: 'main', createdAt: now, ownerId: user.id, isPublic: false,
    templatesRepo: null, deleted: false, originalName: null, sshPublicKey: null,
    sshPrivateKey: null,
  };

  await store.insert('users', user);
  await store.insert('projects', project);
  await store.insert('backends', {
    id: newId(), projectId: project.id, type: 'fake', config: {}, auth: null,
    sourceConfig: {}, sourceAuth: null,
  });

  return {
    ctx,
    backend,
    project,
    user,
    advance(millis) {
      offset += millis;
    },
    start(options = {}) {
      const scheduler = startScheduler(ctx, {
        intervals: fastIntervals,
        leaseMillis: 2000,
        maxIdleMillis: 20,
        stopGraceMillis: 300,
        ...options,
      });
      schedulers.push(scheduler);
      return scheduler;
    },
    async addFleet(configuration = {}) {
      const spec = defaultFleetSpec(4);
      spec.configuration = { ...spec.configuration, backends: ['fake'], ...configuration };
      const id = newId();
      await store.insert('fleets', {
        id, projectId: project.id, name: String(spec.configuration.name), createdAt: ctx.now(),
        lastProcessedAt: ctx.now(), deleted: false, deletedAt: null, status: 'active',
        statusMessage: null, spec, consolidationAttempt: 0, lockToken: null, lockOwner: null,
        lockExpiresAt: null,
      });
      return id;
    },
    async submitRun(configuration, requirements = contractRequirements(1)) {
      const runName = `run-${Math.random().toString(36).slice(2, 8)}`;
      const spec: RunSpec = {
        run_name: runName,
        repo_id: 'none',
        repo_data: { repo_type: 'virtual' },
        configuration: { type: 'task', ...configuration },
        profile: null,
      };
      const t = ctx.now();
      const run: RunRecord = {
        id: newId(), projectId: project.id, userId: user.id, repoId: null, fleetId: null,
        runName, submittedAt: t, lastProcessedAt: t, status: 'submitted',
        statusMessage: 'submitted', terminationReason: null, resubmissionAttempt: 0,
        runSpec: spec, serviceSpec: null, priority: 0, deploymentNum: 0, deleted: false,
        nextTriggeredAt: null, lockToken: null, lockOwner: null, lockExpiresAt: null,
      };
      await store.insert('runs', run);
      await store.insert(
        'jobs',
        buildJobSpecs(spec, { runName, requirements }).map((js) => newJobRecord(run, js, 0, t)),
      );
      ctx.hint?.('jobs');
      return run;
    },
    async jobsOf(runId) {
      return store.find('jobs', { where: { runId }, orderBy: [['submissionNum', 'asc']] });
    },
    async until(check, timeoutMillis = 10_000) {
      const deadline = Date.now() + timeoutMillis;

      for (;;) {
        const value = await check();

        if (value !== undefined) {
          return value;
        }

        if (Date.now() > deadline) {
          throw new Error('timed out waiting');
        }

        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    async close() {
      await Promise.all(schedulers.map((scheduler) => scheduler.stop()));
      await store.close();
    },
  };
}

/** Waits for a run to reach one of the statuses and returns it. */
export async function runReaches(
  harness: Harness,
  runId: string,
  statuses: readonly string[],
  timeoutMillis?: number,
): Promise<RunRecord> {
  return harness.until(async () => {
    const run = await harness.ctx.store.get('runs', runId);
    return run !== undefined && statuses.includes(run.status) ? run : undefined;
  }, timeoutMillis);
}
