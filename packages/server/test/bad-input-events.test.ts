import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { eventTarget, newId, recordEvent } from '@dstack/core';
import type { DstackServer } from '../src/index.js';
import { createTestServer, post } from './helpers.js';

let server: DstackServer;

function events(body: unknown) {
  return post(server, '/api/events/list', server.adminToken, body);
}

beforeEach(async () => {
  server = await createTestServer();
});

afterEach(async () => {
  await server.close();
});

describe('events/list filters of the original that name volumes, gateways and secrets', () => {
  for (const field of ['target_volumes', 'target_gateways', 'target_secrets']) {
    it(`takes ${field} and lists only events about those ids`, async () => {
      const response = await events({ [field]: [newId()] });

      expect(response.statusCode, response.body).toBe(200);
      expect(response.json()).toEqual([]);
    });

    it(`answers 422 for ${field} with 17 ids, as for the other target filters`, async () => {
      const ids = Array.from({ length: 17 }, () => newId());
      const response = await events({ [field]: ids });

      expect(response.statusCode).toBe(422);
      expect(response.json().detail[0]).toMatchObject({ type: 'too_long', loc: ['body', field] });
    });
  }

  it('takes include_target_types volume, gateway and secret', async () => {
    const all = await events({});
    const only = await events({ include_target_types: ['volume', 'gateway', 'secret'] });

    expect(all.statusCode).toBe(200);
    expect((all.json() as unknown[]).length).toBeGreaterThan(0);
    expect(only.statusCode, only.body).toBe(200);
    expect(only.json()).toEqual([]);
  });

  it('matches a secret target by its id', async () => {
    const project = await server.ctx.store.findOne('projects', { where: { name: 'main' } });
    const secretId = newId();
    const secret = { type: 'secret', projectId: project!.id, id: secretId, name: 'token' };

    await recordEvent(server.ctx, server.ctx.store, 'Secret created', null, [
      secret as unknown as ReturnType<typeof eventTarget.project>,
    ]);

    const byId = await events({ target_secrets: [secretId] });
    const byType = await events({ include_target_types: ['secret'] });

    expect(byId.statusCode, byId.body).toBe(200);
    expect(byId.json().map((event: { message: string }) => event.message))
      .toEqual(['Secret created']);
    expect(byType.json()).toEqual(byId.json());
  });

  it('still allows only one target_* filter at a time', async () => {
    const response = await events({ target_secrets: [newId()], target_runs: [newId()] });

    expect(response.statusCode).toBe(422);
    expect(response.json().detail[0].msg)
      .toBe('Value error, At most one target_* filter can be set at a time. ' +
        'Got target_runs, target_secrets');
  });
});
