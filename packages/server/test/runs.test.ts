import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ensureDefaultFleet, newId, startScheduler } from '@dstack/core';
import type { Scheduler } from '@dstack/core';
import type { DstackServer } from '../src/index.js';
import { createFakeBackend } from '@dstack/core/testing';
import type { FakeBackend } from '@dstack/core/testing';
import { addUser, createTestServer, post } from './helpers.js';

let server: DstackServer;
let backend: FakeBackend;
let scheduler: Scheduler;

const fastIntervals = {
  jobsSubmitted: 20, jobsProvisioning: 20, jobsRunning: 20, jobsTerminating: 20, runsActive: 20,
  runsTerminating: 20, instancesPending: 20, instancesActive: 20, fleets: 20,
};

const task = (name: string | null, commands: string[], extra: object = {}) => ({
  run_spec: {
    run_name: name,
    configuration: { type: 'task', name, commands, ...extra },
    ssh_key_pub: 'ssh-rsa AAAA test',
  },
});

async function apply(spec: { run_spec: object }, force = false) {
  return post(server, '/api/project/main/runs/apply', server.adminToken, {
    plan: { run_spec: spec.run_spec, current_resource: null },
    force,
  });
}

async function waitForRun(name: string, statuses: string[]): Promise<Record<string, any>> {
  const deadline = Date.now() + 10_000;

  for (;;) {
    const run = (await post(server, '/api/project/main/runs/get', server.adminToken, {
      run_name: name,
    })).json() as Record<string, any>;

    if (statuses.includes(run.status)) {
      return run;
    }

    if (Date.now() > deadline) {
      throw new Error(`run ${name} is ${run.status}`);
    }

    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

beforeEach(async () => {
  backend = createFakeBackend();
  server = await createTestServer({ providers: [backend.provider] });
  const project = await server.ctx.store.findOne('projects', { where: { name: 'main' } });
  await server.ctx.store.insert('backends', {
    id: newId(), projectId: project!.id, type: 'fake', config: {}, auth: null,
    sourceConfig: {}, sourceAuth: null,
  });
  scheduler = startScheduler(server.ctx, {
    intervals: fastIntervals, maxIdleMillis: 20, stopGraceMillis: 200,
  });
});

afterEach(async () => {
  await scheduler.stop();
  await server.close();
});

async function addFakeFleet(name = 'fakes') {
  const response = await post(server, '/api/project/main/fleets/apply', server.adminToken, {
    plan: {
      spec: { configuration: { type: 'fleet', name, nodes: '0..2', backends: ['fake'],
        placement: 'cluster' } },
      current_resource: null,
    },
    force: false,
  });
  expect(response.statusCode, response.body).toBe(200);
  return response.json() as Record<string, any>;
}

describe('runs API', () => {
  it('applies a task, runs it to done and serves its logs in base64', async () => {
    await addFakeFleet();
    const applied = await apply(task('hello', ['echo Hello', 'echo again']));
    expect(applied.statusCode, applied.body).toBe(200);
    const submitted = applied.json() as Record<string, any>;

    expect(submitted).toMatchObject({
      project_name: 'main',
      user: 'admin',
      status: 'submitted',
      status_message: 'submitted',
      termination_reason: null,
      cost: 0,
      deployment_num: 0,
      deleted: false,
      error: null,
      service: null,
      fleet: null,
      next_triggered_at: null,
    });
    expect(submitted.run_spec.repo_id).toBe('none');
    expect(submitted.jobs).toHaveLength(1);
    expect(submitted.jobs[0].job_submissions[0]).toMatchObject({
      submission_num: 0, status: 'submitted', termination_reason: null, exit_status: null,
      job_provisioning_data: null, probes: [],
    });
    expect(submitted.jobs[0].job_spec.job_name).toBe('hello-0-0');

    const done = await waitForRun('hello', ['done', 'failed', 'terminated']);
    const submission = done.jobs[0].job_submissions[0];

    expect(done.status).toBe('done');
    expect(done.termination_reason).toBe('all_jobs_done');
    expect(done.fleet.name).toBe('fakes');
    expect(submission.status).toBe('done');
    expect(submission.exit_status).toBe(0);
    expect(submission.job_provisioning_data.backend).toBe('fake');
    expect(done.latest_job_submission.id).toBe(submission.id);

    const logs = await post(server, '/api/project/main/logs/poll', server.adminToken, {
      run_name: 'hello', job_submission_id: submission.id, limit: 1000,
    });
    expect(logs.statusCode, logs.body).toBe(200);
    const body = logs.json() as { logs: { message: string; log_source: string }[] };
    expect(body.logs.map((event) => event.message)).toEqual([
      Buffer.from('Hello\n').toString('base64'),
      Buffer.from('again\n').toString('base64'),
    ]);
    expect(body.logs[0]!.log_source).toBe('stdout');
  });

  it('generates a name for a run without one', async () => {
    await addFakeFleet();
    const applied = await apply(task(null, ['echo hi']));
    const name = (applied.json() as { run_spec: { run_name: string } }).run_spec.run_name;

    expect(name).toMatch(/^[a-z]+-[a-z]+-\d+$/);
  });

  it('plans with real offers, cheapest first', async () => {
    await addFakeFleet();
    const plan = await post(server, '/api/project/main/runs/get_plan', server.adminToken,
      task('planned', ['echo hi']));
    expect(plan.statusCode, plan.body).toBe(200);
    const body = plan.json() as Record<string, any>;

    expect(body.action).toBe('create');
    expect(body.current_resource).toBeNull();
    expect(body.job_plans[0].offers.map((o: { price: number }) => o.price)).toEqual([0.5, 1]);
    expect(body.job_plans[0].total_offers).toBe(2);
    expect(body.job_plans[0].max_price).toBe(1);
    expect(body.effective_run_spec.configuration.priority).toBe(0);
  });

  it('plans and schedules idle instances within the run backends and instances', async () => {
    await addFakeFleet();
    await apply(task('first', ['echo one']));
    const first = await waitForRun('first', ['done']);
    const fleet = (await post(server, '/api/project/main/fleets/get', server.adminToken,
      { name: 'fakes' })).json();
    expect(fleet.instances.map((i: any) => [i.name, i.status])).toEqual([['fakes-0', 'idle']]);

    const offersFor = async (extra: object) => {
      const plan = await post(server, '/api/project/main/runs/get_plan', server.adminToken,
        task('planned', ['echo hi'], extra));
      expect(plan.statusCode, plan.body).toBe(200);
      return plan.json().job_plans[0].offers.map((o: any) => [o.backend, o.price]);
    };

    expect(await offersFor({ backends: ['local'] })).toEqual([]);
    expect(await offersFor({ instances: ['nope'] })).toEqual([]);
    expect(await offersFor({ instances: [{ name: 'fakes-0' }] }))
      .toEqual([['fake', 0.5]]);
    expect(await offersFor({ instances: [{ fleet: 'fakes', instance: 0 }] })).toHaveLength(1);

    await apply(task('nowhere', ['echo two'], { instances: ['nope'] }));
    const refused = await waitForRun('nowhere', ['failed', 'done', 'terminated']);
    expect(refused.status).toBe('failed');
    expect(refused.jobs[0].job_submissions[0].termination_reason)
      .toBe('failed_to_start_due_to_no_capacity');

    await apply(task('picked', ['echo three'], { instances: [{ name: 'fakes-0' }] }));
    const picked = await waitForRun('picked', ['failed', 'done', 'terminated']);
    expect(picked.status).toBe('done');
    expect(picked.jobs[0].job_submissions[0].job_provisioning_data.instance_id)
      .toBe(first.jobs[0].job_submissions[0].job_provisioning_data.instance_id);
    expect(backend.created).toHaveLength(1);
  });

  it('patches run specs for older clients from X-API-VERSION and leaves dev clients alone',
    async () => {
      await addFakeFleet();
      const as = (version: string | null, url: string, body: object) => server.inject({
        method: 'POST', url, payload: body,
        headers: {
          authorization: `Bearer ${server.adminToken}`,
          ...(version === null ? {} : { 'x-api-version': version }),
        },
      });
      const service = {
        run_spec: {
          run_name: 'svc',
          configuration: { type: 'service', commands: ['serve'], port: 8000,
            fleets: [{ project: 'main', name: 'fakes' }] },
          ssh_key_pub: 'ssh-rsa AAAA test',
        },
      };
      const planFor = async (version: string | null) => {
        const response = await as(version, '/api/project/main/runs/get_plan', service);
        expect(response.statusCode, response.body).toBe(200);
        const { probes, https, fleets } = response.json().effective_run_spec.configuration;
        return { probes, https, fleets };
      };

      expect(await planFor('0.19.20'))
        .toEqual({ probes: [], https: true, fleets: ['main/fakes'] });
      expect(await planFor('0.20.10'))
        .toEqual({ probes: null, https: true, fleets: ['main/fakes'] });
      const modern = { probes: null, https: null, fleets: [{ project: 'main', name: 'fakes' }] };
      expect(await planFor(null)).toEqual(modern);
      expect(await planFor('latest')).toEqual(modern);
      expect(await planFor('0.0.0')).toEqual(modern);
      expect(await planFor('0.20.20')).toEqual(modern);

      await apply(task('nodes', ['echo hi']));
      const nodesOf = async (version: string | null) => {
        const response = await as(version, '/api/project/main/runs/get', { run_name: 'nodes' });
        expect(response.statusCode, response.body).toBe(200);
        return response.json().run_spec.configuration.nodes;
      };
      const listed = await as('0.20.30', '/api/runs/list', { project_name: 'main' });

      expect(await nodesOf('0.19.20')).toBe(1);
      expect(await nodesOf('0.20.30')).toBe(1);
      // The parsed configuration already defaults nodes to 1, so dev clients see 1 as well.
      expect(await nodesOf(null)).toBe(1);
      expect(listed.json().map((run: any) => run.run_spec.configuration.nodes)).toEqual([1]);
    });

  it('takes back the current_resource an older client got patched on re-apply', async () => {
    await addFakeFleet();
    const service = {
      run_name: 'svc', configuration: { type: 'service', commands: ['sleep'], port: 8000 },
      ssh_key_pub: 'ssh-rsa AAAA test',
    };
    const old = (url: string, body: object) => server.inject({
      method: 'POST', url, payload: body,
      headers: { authorization: `Bearer ${server.adminToken}`, 'x-api-version': '0.19.20' },
    });
    const created = await old('/api/project/main/runs/apply',
      { plan: { run_spec: service, current_resource: null }, force: false });
    expect(created.statusCode, created.body).toBe(200);

    const plan = (await old('/api/project/main/runs/get_plan', { run_spec: service })).json();
    expect(plan.current_resource.run_spec.configuration.probes).toEqual([]);
    expect(plan.action).toBe('update');

    const again = await old('/api/project/main/runs/apply',
      { plan: { run_spec: service, current_resource: plan.current_resource }, force: false });
    expect(again.statusCode, again.body).toBe(200);
    expect(again.json().id).toBe(created.json().id);
  });

  it('plans create, and apply refuses, a changed spec for an active run', async () => {
    await addFakeFleet();
    await apply(task('long', ['sleep']));
    const running = await waitForRun('long', ['running']);
    const planOf = async (commands: string[]) => (await post(server,
      '/api/project/main/runs/get_plan', server.adminToken, task('long', commands))).json();
    const same = await planOf(['sleep']);
    const changed = await planOf(['echo changed']);

    expect([same.action, same.current_resource.id]).toEqual(['update', running.id]);
    expect([changed.action, changed.current_resource.id]).toEqual(['create', running.id]);

    const kept = await post(server, '/api/project/main/runs/apply', server.adminToken, {
      plan: { run_spec: task('long', ['sleep']).run_spec, current_resource: same.current_resource },
      force: false,
    });
    expect([kept.statusCode, kept.json().id]).toEqual([200, running.id]);

    const again = await apply(task('long', ['echo changed']), true);

    expect(again.statusCode).toBe(400);
    expect(again.json()).toEqual({
      detail: [{ msg: 'Cannot override active run. Stop the run first.', code: 'error' }],
    });
  });

  it('stops a run, refuses to delete it while active and deletes it once finished', async () => {
    await addFakeFleet();
    await apply(task('stoppable', ['sleep']));
    await waitForRun('stoppable', ['running']);
    const refused = await post(server, '/api/project/main/runs/delete', server.adminToken,
      { runs_names: ['stoppable'] });
    expect(refused.statusCode).toBe(400);
    expect(refused.json().detail[0].msg).toBe("Cannot delete active runs: ['stoppable']");

    const stopped = await post(server, '/api/project/main/runs/stop', server.adminToken,
      { runs_names: ['stoppable', 'unknown'], abort: false });
    expect(stopped.statusCode).toBe(200);
    expect(stopped.json()).toBeNull();
    const finished = await waitForRun('stoppable', ['terminated']);
    expect(finished.termination_reason).toBe('stopped_by_user');
    expect(finished.jobs[0].job_submissions[0].termination_reason).toBe('terminated_by_user');

    const deleted = await post(server, '/api/project/main/runs/delete', server.adminToken,
      { runs_names: ['stoppable'] });
    expect(deleted.statusCode).toBe(200);
    const byName = await post(server, '/api/project/main/runs/get', server.adminToken,
      { run_name: 'stoppable' });
    expect(byName.statusCode).toBe(400);
    expect(byName.json().detail[0].code).toBe('resource_not_exists');
    const byId = await post(server, '/api/project/main/runs/get', server.adminToken,
      { id: finished.id });
    expect(byId.json().deleted).toBe(true);
  });

  it('fails a run with no capacity when the project has no fleet', async () => {
    await apply(task('nofleet', ['echo hi']));
    const run = await waitForRun('nofleet', ['failed']);
    const submission = run.jobs[0].job_submissions[0];

    expect(submission.termination_reason).toBe('failed_to_start_due_to_no_capacity');
    expect(submission.termination_reason_message).toMatch(/No fleet matches/);
    expect(submission.status_message).toBe('no offers');
  });

  it('lists runs newest first with keyset pagination and hides other projects', async () => {
    await addFakeFleet();
    for (const name of ['r-one', 'r-two', 'r-three']) {
      await apply(task(name, ['echo hi']));
      await new Promise((resolve) => setTimeout(resolve, 5));
    }

    const first = await post(server, '/api/runs/list', server.adminToken, { limit: 2 });
    type Listed = { run_spec: { run_name: string }; submitted_at: string; id: string };
    const page1 = first.json() as Listed[];
    expect(page1.map((run) => run.run_spec.run_name)).toEqual(['r-three', 'r-two']);
    const last = page1[1]!;
    const second = await post(server, '/api/runs/list', server.adminToken, {
      limit: 2, prev_submitted_at: last.submitted_at, prev_run_id: last.id,
    });
    expect((second.json() as typeof page1).map((run) => run.run_spec.run_name)).toEqual(['r-one']);

    const outsider = await addUser(server, 'outsider');
    const hidden = await post(server, '/api/runs/list', outsider, {});
    expect(hidden.json()).toEqual([]);
    const tooMany = await post(server, '/api/runs/list', server.adminToken, { limit: 101 });
    expect(tooMany.statusCode).toBe(422);
  });

  it('rejects a logs limit over 1000 with 422 and a bad token with 400', async () => {
    const id = newId();
    const tooMany = await post(server, '/api/project/main/logs/poll', server.adminToken, {
      run_name: 'x', job_submission_id: id, limit: 1001,
    });
    expect(tooMany.statusCode).toBe(422);

    const empty = await post(server, '/api/project/main/logs/poll', server.adminToken, {
      run_name: 'x', job_submission_id: id,
    });
    expect(empty.json()).toEqual({ logs: [], external_url: null, next_token: null });
  });

  it('names the installed backend types', async () => {
    const types = await post(server, '/api/backends/list_types', null);
    expect(types.json()).toEqual(['fake']);
  });
});

describe('fleets and instances API', () => {
  it('applies, lists, gets and deletes a fleet; instances show up while used', async () => {
    const fleet = await addFakeFleet('pool');
    expect(fleet).toMatchObject({ name: 'pool', project_name: 'main', status: 'active',
      status_message: null, instances: [] });
    expect(fleet.spec.configuration.nodes).toMatchObject({ min: 0, max: 2 });

    await apply(task('user', ['echo hi']));
    await waitForRun('user', ['done']);
    const got = (await post(server, '/api/project/main/fleets/get', server.adminToken,
      { name: 'pool' })).json() as Record<string, any>;
    expect(got.instances).toHaveLength(1);
    expect(got.instances[0]).toMatchObject({
      name: 'pool-0', fleet_name: 'pool', instance_num: 0, status: 'idle', backend: 'fake',
      price: 0.5, busy_blocks: 0, total_blocks: 1, job_name: null, unreachable: false,
      health_status: 'healthy',
    });

    const listed = await post(server, '/api/instances/list', server.adminToken, {});
    expect((listed.json() as { id: string }[]).map((i) => i.id)).toEqual([got.instances[0].id]);
    const one = await post(server, '/api/project/main/instances/get', server.adminToken,
      { id: got.instances[0].id });
    expect(one.json().name).toBe('pool-0');

    const fleets = await post(server, '/api/project/main/fleets/list', server.adminToken);
    expect((fleets.json() as { name: string }[]).map((f) => f.name)).toEqual(['pool']);
    const global = await post(server, '/api/fleets/list', server.adminToken, {});
    expect((global.json() as { name: string }[]).map((f) => f.name)).toEqual(['pool']);

    const deleted = await post(server, '/api/project/main/fleets/delete', server.adminToken,
      { names: ['pool', 'nope'] });
    expect(deleted.statusCode).toBe(200);
    const deadline = Date.now() + 10_000;
    let gone: Record<string, any> = {};

    while (Date.now() < deadline) {
      gone = (await post(server, '/api/project/main/fleets/get', server.adminToken,
        { id: fleet.id })).json() as Record<string, any>;

      if (gone.status === 'terminated') {
        break;
      }

      await new Promise((resolve) => setTimeout(resolve, 25));
    }

    expect(gone.status).toBe('terminated');
    expect(gone.instances).toEqual([]);
    expect(backend.terminated).toEqual([got.instances[0].id]);
  });

  it('plans a fleet with offers and creates a default fleet only once', async () => {
    const plan = await post(server, '/api/project/main/fleets/get_plan', server.adminToken, {
      spec: { configuration: { type: 'fleet', name: 'planned', nodes: 1, backends: ['fake'] } },
    });
    expect(plan.statusCode, plan.body).toBe(200);
    expect(plan.json()).toMatchObject({ action: 'create', total_offers: 2, max_offer_price: 1,
      current_resource: null, user: 'admin', project_name: 'main' });

    expect(await ensureDefaultFleet(server.ctx, 'main')).toBe('no-local-backend');
    const project = await server.ctx.store.findOne('projects', { where: { name: 'main' } });
    await server.ctx.store.insert('backends', {
      id: newId(), projectId: project!.id, type: 'local', config: {}, auth: null,
      sourceConfig: {}, sourceAuth: null,
    });
    expect(await ensureDefaultFleet(server.ctx, 'main')).toBe('created');
    expect(await ensureDefaultFleet(server.ctx, 'main')).toBe('has-fleets');
    const fleets = await post(server, '/api/project/main/fleets/list', server.adminToken);
    expect(fleets.json()[0].spec.configuration).toMatchObject({
      name: 'default', backends: ['local'], nodes: { min: 0, max: 4 }, placement: 'cluster',
    });
    
  });
});
