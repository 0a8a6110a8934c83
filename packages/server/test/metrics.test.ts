import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { newId } from '@dstack/core';
import { createFakeBackend } from '@dstack/core/testing';
import type { DstackServer } from '../src/index.js';
import { addUser, createTestServer, post } from './helpers.js';

let server: DstackServer;
let member: string;
let runId: string;

function metrics(token: string | null, path: string) {
  return server.inject({
    method: 'GET',
    url: `/api/project/main/metrics/job/${path}`,
    headers: token === null ? {} : { authorization: `Bearer ${token}` },
  });
}

const noJob = {
  detail: [{ msg: 'Found no job with given parameters', code: 'resource_not_exists' }],
};

beforeEach(async () => {
  const backend = createFakeBackend();
  server = await createTestServer({ providers: [backend.provider] });
  const project = await server.ctx.store.findOne('projects', { where: { name: 'main' } });
  await server.ctx.store.insert('backends', {
    id: newId(), projectId: project!.id, type: 'fake', config: {}, auth: null,
    sourceConfig: {}, sourceAuth: null,
  });
  member = await addUser(server, 'member');
  await post(server, '/api/projects/main/add_members', server.adminToken,
    { members: [{ username: 'member', project_role: 'user' }] });

  const applied = await post(server, '/api/project/main/runs/apply', member, {
    plan: {
      run_spec: {
        run_name: 'metered',
        configuration: { type: 'task', commands: ['true'] },
        ssh_key_pub: 'ssh-rsa AAAA test',
      },
      current_resource: null,
    },
    force: false,
  });
  expect(applied.statusCode).toBe(200);
  runId = (applied.json() as { id: string }).id;
});

afterEach(async () => {
  await server.close();
});

describe('metrics/job', () => {
  it('answers no samples for an existing job, by name or run id', async () => {
    const byName = await metrics(member, 'metered');
    expect(byName.statusCode).toBe(200);
    expect(byName.json()).toEqual({ metrics: [] });

    const byId = await metrics(member, `metered?run_id=${runId}&replica_num=0&job_num=0&limit=5`);
    expect(byId.json()).toEqual({ metrics: [] });
  });

  it('answers 400 resource_not_exists when no job matches', async () => {
    for (const path of [
      'ghost',
      'metered?job_num=1',
      'metered?replica_num=3',
      `metered?run_id=${crypto.randomUUID()}`,
    ]) {
      const response = await metrics(member, path);
      expect(response.statusCode).toBe(400);
      expect(response.json()).toEqual(noJob);
    }
  });

  it('ignores deleted runs when looking up by name', async () => {
    await server.ctx.store.update('runs', { id: runId }, { deleted: true });
    expect((await metrics(member, 'metered')).json()).toEqual(noJob);
  });

  it('checks the guard, then the query', async () => {
    const outsider = await addUser(server, 'outsider');
    expect((await metrics(outsider, 'metered')).statusCode).toBe(403);
    expect([401, 403]).toContain((await metrics(null, 'metered')).statusCode);

    const bad = await metrics(member, 'metered?job_num=x');
    expect(bad.statusCode).toBe(422);
    expect(bad.json().detail[0]).toMatchObject({ type: 'int_parsing', loc: ['query', 'job_num'] });

    const badId = await metrics(member, 'metered?run_id=nope');
    expect(badId.json().detail[0].loc).toEqual(['query', 'run_id']);

    // A POST to the path is the wrong method.
    expect((await post(server, '/api/project/main/metrics/job/metered', member, {})).statusCode)
      .toBe(405);
  });
});
