import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { eventTarget, newId, recordEvent } from '@dstack/core';
import { createFakeBackend } from '@dstack/core/testing';
import type { DstackServer } from '../src/index.js';
import { addUser, createTestServer, post } from './helpers.js';

let server: DstackServer;
let clock: number;

interface Event {
  id: string;
  message: string;
  recorded_at: string;
  actor_user_id: string | null;
  actor_user: string | null;
  is_actor_user_deleted: boolean | null;
  targets: {
    type: string;
    project_id: string | null;
    project_name: string | null;
    is_project_deleted: boolean | null;
    id: string;
    name: string;
  }[];
}

function events(token: string | null, body: unknown = {}) {
  return post(server, '/api/events/list', token, body);
}

async function listed(token: string, body: unknown = {}): Promise<Event[]> {
  const response = await events(token, body);
  expect(response.statusCode).toBe(200);
  return response.json() as Event[];
}

async function userId(name: string): Promise<string> {
  const user = await server.ctx.store.findOne('users', { where: { name } });
  return user!.id;
}

async function projectId(name: string): Promise<string> {
  const project = await server.ctx.store.findOne('projects', { where: { name } });
  return project!.id;
}

beforeEach(async () => {
  server = await createTestServer();
  // Each later event gets its own second, after the first start's, so the order is exact.
  clock = Date.now() + 60_000;
  server.ctx.now = () => (clock += 1000);
});

afterEach(async () => {
  await server.close();
});

describe('events emitted by mutations', () => {
  it('records users, projects and secrets being created, updated and deleted', async () => {
    const alice = await addUser(server, 'alice');
    await post(server, '/api/projects/create', alice, { project_name: 'proj', is_public: false });
    await post(server, '/api/project/proj/secrets/create_or_update', alice,
      { name: 'TOKEN', value: 'v1' });
    await post(server, '/api/project/proj/secrets/create_or_update', alice,
      { name: 'TOKEN', value: 'v2' });
    await post(server, '/api/project/proj/secrets/delete', alice, { secrets_names: ['TOKEN'] });
    await post(server, '/api/projects/delete', alice, { projects_names: ['proj'] });
    await post(server, '/api/users/delete', server.adminToken, { users: ['alice'] });

    const all = await listed(server.adminToken, { ascending: true });
    const adminId = await userId('admin');
    const aliceRow = await server.ctx.store.findOne('users', { where: { originalName: 'alice' } });
    const projRow = await server.ctx.store.findOne('projects', {
      where: { originalName: 'proj' },
    });

    expect(all.map((event) => [event.message, event.actor_user, event.targets[0]!.name]))
      .toEqual([
        ['User created', null, 'admin'],
        ['Project created', null, 'main'],
        ['User created', 'admin', 'alice'],
        ['Project created', 'alice', 'proj'],
        ['Secret created', 'alice', 'TOKEN'],
        ['Secret updated', 'alice', 'TOKEN'],
        ['Secret deleted', 'alice', 'TOKEN'],
        ['Project deleted', 'alice', 'proj'],
        ['User deleted', 'admin', 'alice'],
      ]);

    const aliceCreated = all[2]!;
    expect(aliceCreated).toEqual({
      id: aliceCreated.id,
      message: 'User created',
      recorded_at: aliceCreated.recorded_at,
      actor_user_id: adminId,
      actor_user: 'admin',
      is_actor_user_deleted: false,
      targets: [{
        type: 'user', project_id: null, project_name: null, is_project_deleted: null,
        id: aliceRow!.id, name: 'alice',
      }],
    });
    expect(Date.parse(aliceCreated.recorded_at))
      .toBeGreaterThan(Date.parse(all[1]!.recorded_at));

    // As the original, secret events are about the secret, within its project.
    const secretTargets = all.slice(4, 7).map((event) => event.targets);
    expect(new Set(secretTargets.map((targets) => targets[0]!.id)).size).toBe(1);
    expect(secretTargets[0]).toEqual([{
      type: 'secret', project_id: projRow!.id, project_name: 'proj', is_project_deleted: true,
      id: secretTargets[0]![0]!.id, name: 'TOKEN',
    }]);

    // Deleted actors and projects keep their names and say they are deleted.
    const projectDeleted = all[7]!;
    expect(projectDeleted.actor_user).toBe('alice');
    expect(projectDeleted.is_actor_user_deleted).toBe(true);
    expect(projectDeleted.targets[0]).toEqual({
      type: 'project', project_id: projRow!.id, project_name: 'proj', is_project_deleted: true,
      id: projRow!.id, name: 'proj',
    });
  });
});

describe('events/list', () => {
  let bob: string;

  beforeEach(async () => {
    bob = await addUser(server, 'bob');
    await post(server, '/api/projects/create', bob, { project_name: 'bobs', is_public: false });
    await post(server, '/api/projects/create', server.adminToken,
      { project_name: 'hidden', is_public: false });
  });

  it('shows a non-admin only events of their projects and of themselves', async () => {
    const seen = await listed(bob);
    expect(seen.map((event) => [event.message, event.targets[0]!.name])).toEqual([
      ['Project created', 'bobs'],
      ['User created', 'bob'],
    ]);

    const everything = await listed(server.adminToken);
    expect(everything.map((event) => event.targets[0]!.name))
      .toEqual(['hidden', 'bobs', 'bob', 'main', 'admin']);
  });

  it('filters by target, containing project, type and actor', async () => {
    const bobsId = await projectId('bobs');
    const byProject = await listed(server.adminToken, { target_projects: [bobsId] });
    expect(byProject.map((event) => event.message)).toEqual(['Project created']);

    const byUser = await listed(server.adminToken, { target_users: [await userId('bob')] });
    expect(byUser.map((event) => event.targets[0]!.name)).toEqual(['bob']);

    const within = await listed(server.adminToken, { within_projects: [bobsId] });
    expect(within).toHaveLength(1);

    const users = await listed(server.adminToken, { include_target_types: ['user'] });
    expect(users.map((event) => event.targets[0]!.name)).toEqual(['bob', 'admin']);

    const bySystem = await listed(server.adminToken, { actors: [null] });
    expect(bySystem.map((event) => event.targets[0]!.name)).toEqual(['main', 'admin']);

    const byBob = await listed(server.adminToken, { actors: [await userId('bob')] });
    expect(byBob.map((event) => event.targets[0]!.name)).toEqual(['bobs']);

    // A non-admin filtering for a project they cannot see gets nothing.
    expect(await listed(bob, { target_projects: [await projectId('hidden')] })).toEqual([]);
  });

  it('finds runs and jobs within a run', async () => {
    const main = await projectId('main');
    const runId = crypto.randomUUID();
    const jobId = crypto.randomUUID();
    const ctx = server.ctx;
    await recordEvent(ctx, ctx.store, 'Run submitted', null,
      [eventTarget.run({ id: runId, projectId: main, runName: 'r1' })]);
    await recordEvent(ctx, ctx.store, 'Job created', null,
      [eventTarget.job({ id: jobId, projectId: main, jobName: 'r1-0-0' })]);
    await ctx.store.insert('jobs', {
      id: jobId, projectId: main, runId, fleetId: null, runName: 'r1', jobNum: 0,
      jobName: 'r1-0-0', replicaNum: 0, submissionNum: 0, deploymentNum: 0,
      submittedAt: clock, lastProcessedAt: clock, finishedAt: null, status: 'done',
      statusMessage: null, terminationReason: null, terminationReasonMessage: null,
      exitStatus: 0, jobSpec: {}, provisioningData: null, runtimeData: null,
      runnerTimestamp: null, disconnectedAt: null, instanceId: null, usedInstanceId: null,
      instanceAssigned: false, gracefulTerminationAttempts: null, removeAt: null,
      waitingMasterJob: false, lockToken: null, lockOwner: null, lockExpiresAt: null,
    });

    const inRun = await listed(server.adminToken, { within_runs: [runId] });
    expect(inRun.map((event) => event.message)).toEqual(['Job created', 'Run submitted']);

    const onlyRun = await listed(server.adminToken, { target_runs: [runId] });
    expect(onlyRun.map((event) => event.message)).toEqual(['Run submitted']);
  });

  it('pages by recorded_at and id both ways', async () => {
    const all = await listed(server.adminToken);
    expect(all).toHaveLength(5);

    const first = await listed(server.adminToken, { limit: 2 });
    expect(first.map((event) => event.id)).toEqual(all.slice(0, 2).map((event) => event.id));
    const last = first[1]!;
    const next = await listed(server.adminToken, {
      limit: 2, prev_recorded_at: last.recorded_at, prev_id: last.id,
    });
    expect(next.map((event) => event.id)).toEqual(all.slice(2, 4).map((event) => event.id));

    const ascending = await listed(server.adminToken, { ascending: true });
    expect(ascending.map((event) => event.id)).toEqual([...all].reverse().map((e) => e.id));
    const after = await listed(server.adminToken, {
      ascending: true, prev_recorded_at: ascending[2]!.recorded_at,
    });
    expect(after.map((event) => event.id)).toEqual(ascending.slice(3).map((event) => event.id));
  });

  it('pages through ties on recorded_at by id', async () => {
    const ctx = server.ctx;
    const main = await projectId('main');
    const at = clock + 1000;
    await ctx.store.insert('events', ['a', 'b', 'c'].map((suffix) => ({
      id: `00000000-0000-4000-8000-00000000000${suffix}`,
      message: 'Tie',
      recordedAt: at,
      actorUserId: null,
      targets: [{ type: 'project', projectId: main, id: main, name: 'main' }],
    })));

    const page = await listed(server.adminToken, { limit: 1 });
    expect(page[0]!.id.endsWith('a')).toBe(true);
    const rest = await listed(server.adminToken, {
      limit: 2, prev_recorded_at: page[0]!.recorded_at, prev_id: page[0]!.id,
    });
    expect(rest.map((event) => event.id.slice(-1))).toEqual(['b', 'c']);
  });

  it('checks auth, then the body', async () => {
    expect([401, 403]).toContain((await events(null)).statusCode);

    for (const body of [
      { limit: 0 },
      { limit: 101 },
      { target_runs: [] },
      { target_runs: ['not-a-uuid'] },
      { include_target_types: ['bogus'] },
      { unknown: true },
    ]) {
      expect((await events(bob, body)).statusCode).toBe(422);
    }

    const twoTargets = await events(bob, {
      target_projects: [crypto.randomUUID()],
      target_users: [crypto.randomUUID()],
    });
    expect(twoTargets.statusCode).toBe(422);
    expect(twoTargets.json().detail[0].msg).toBe(
      'Value error, At most one target_* filter can be set at a time.'
        + ' Got target_projects, target_users',
    );

    const twoWithin = await events(bob, {
      within_projects: [crypto.randomUUID()],
      within_runs: [crypto.randomUUID()],
    });
    expect(twoWithin.json().detail[0].msg).toContain('At most one within_* filter');
  });
});

describe('events of runs and fleets', () => {
  it('records fleets created and deleted, runs submitted, stopped and deleted', async () => {
    await server.close();
    const backend = createFakeBackend();
    server = await createTestServer({ providers: [backend.provider] });
    server.ctx.now = () => (clock += 1000);
    const main = await projectId('main');
    await server.ctx.store.insert('backends', {
      id: newId(), projectId: main, type: 'fake', config: {}, auth: null,
      sourceConfig: {}, sourceAuth: null,
    });
    const token = server.adminToken;

    const fleet = await post(server, '/api/project/main/fleets/apply', token, {
      plan: { spec: { configuration: { type: 'fleet', name: 'fl', nodes: '0..1' } } },
      force: false,
    });
    expect(fleet.statusCode, fleet.body).toBe(200);
    const run = await post(server, '/api/project/main/runs/apply', token, {
      plan: {
        run_spec: {
          run_name: 'ev-run',
          configuration: { type: 'task', commands: ['true'] },
          ssh_key_pub: 'ssh-rsa AAAA test',
        },
        current_resource: null,
      },
      force: false,
    });
    expect(run.statusCode, run.body).toBe(200);
    const runId = (run.json() as { id: string }).id;
    const stopped = await post(server, '/api/project/main/runs/stop', token,
      { runs_names: ['ev-run'], abort: false });
    expect(stopped.statusCode, stopped.body).toBe(200);
    // No scheduler runs here, so the run is finished by hand before it can be deleted.
    await server.ctx.store.update('runs', { id: runId }, { status: 'terminated' });
    const deleted = await post(server, '/api/project/main/runs/delete', token,
      { runs_names: ['ev-run'] });
    expect(deleted.statusCode, deleted.body).toBe(200);
    await post(server, '/api/project/main/fleets/delete', token, { names: ['fl'] });

    const all = await listed(token, { within_projects: [main], ascending: true });
    const adminId = await userId('admin');
    expect(all.filter((event) => event.targets[0]!.type !== 'project')
      .map((event) => [event.message, event.actor_user_id, event.targets[0]!.type,
        event.targets[0]!.name])).toEqual([
      ['Fleet created', adminId, 'fleet', 'fl'],
      ['Run submitted', adminId, 'run', 'ev-run'],
      ['Run stopped', adminId, 'run', 'ev-run'],
      ['Run deleted', adminId, 'run', 'ev-run'],
      ['Fleet deleted', adminId, 'fleet', 'fl'],
    ]);

    const runOnly = await listed(token, { target_runs: [runId] });
    expect(runOnly).toHaveLength(3);
  });
});

describe('DSTACK_SERVER_EVENTS_TTL_SECONDS=0', () => {
  it('stores no events while the mutations still succeed', async () => {
    const quiet = await createTestServer({ settings: { eventsTtlSeconds: 0 } });

    try {
      const created = await post(quiet, '/api/projects/create', quiet.adminToken,
        { project_name: 'proj', is_public: false });
      const response = await post(quiet, '/api/events/list', quiet.adminToken, {});

      expect(created.statusCode).toBe(200);
      expect(response.statusCode).toBe(200);
      expect(response.json()).toEqual([]);
      expect(await quiet.ctx.store.count('events')).toBe(0);
    } finally {
      await quiet.close();
    }
  });
});
