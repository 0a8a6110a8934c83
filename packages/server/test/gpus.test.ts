import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { newId } from '@dstack/core';
import type { BackendProvider, InstanceOffer, Requirements } from '@dstack/core';
import type { DstackServer } from '../src/index.js';
import { addUser, createTestServer, post } from './helpers.js';

let server: DstackServer;
let tokens: Record<string, string>;
let asked: Requirements[];

function gpuOffer(region: string, price: number, gpus: number, spot: boolean): InstanceOffer {
  return {
    backend: 'gpufake',
    instance: {
      name: `g${gpus}`,
      resources: {
        cpus: 8 * gpus,
        memory_mib: 65536,
        gpus: Array.from({ length: gpus }, () => ({
          name: 'L4', memory_mib: 24576, vendor: 'nvidia',
        })),
        spot,
        disk: { size_mib: 102400 },
        cpu_arch: 'x86',
        description: '',
      },
    },
    region,
    price,
    backend_data: {},
    availability: 'available',
    availability_zones: null,
    instance_runtime: 'shim',
    blocks: 1,
    total_blocks: 1,
  };
}

// A backend whose catalogue has GPU instances; the offer path in front of it is the real one.
const gpuBackend: BackendProvider = {
  type: 'gpufake',
  capabilities: { images: true, multinode: true },
  async getOffers({ requirements }) {
    asked.push(requirements);
    const all = [
      gpuOffer('r1', 1, 1, false),
      gpuOffer('r2', 0.6, 1, true),
      gpuOffer('r1', 4, 4, false),
    ];
    const min = requirements.resources.gpu.count.min ?? 0;
    return all.filter((offer) => offer.instance.resources.gpus.length >= min);
  },
  async createInstance() {
    throw new Error('gpus/list never creates instances');
  },
  async terminateInstance() {
    throw new Error('gpus/list never terminates instances');
  },
  agent() {
    throw new Error('gpus/list never talks to agents');
  },
};

const runSpec = (resources: object, extra: object = {}) => ({
  run_spec: {
    configuration: { type: 'task', commands: ['nvidia-smi'], resources, ...extra },
  },
});

function list(token: string | null, body?: unknown, project = 'main') {
  return post(server, `/api/project/${project}/gpus/list`, token, body);
}

beforeEach(async () => {
  asked = [];
  server = await createTestServer({ providers: [gpuBackend] });
  const project = await server.ctx.store.findOne('projects', { where: { name: 'main' } });
  await server.ctx.store.insert('backends', {
    id: newId(), projectId: project!.id, type: 'gpufake', config: {}, auth: null,
    sourceConfig: {}, sourceAuth: null,
  });
  tokens = { admin: server.adminToken };
  tokens.pu = await addUser(server, 'pu');
  await post(server, '/api/projects/main/add_members', server.adminToken,
    { members: [{ username: 'pu', project_role: 'user' }] });
  tokens.outsider = await addUser(server, 'outsider');
});

afterEach(async () => {
  await server.close();
});

describe('gpus/list', () => {
  it('lists the backends\' GPUs for the requirements, leaving out unset fields', async () => {
    const response = await list(tokens.pu!, runSpec({ gpu: 1 }));
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({
      gpus: [{
        name: 'L4', memory_mib: 24576, vendor: 'nvidia', availability: ['available'],
        spot: ['spot', 'on-demand'], count: { min: 1, max: 4 }, price: { min: 0.6, max: 1 },
        backends: ['gpufake'],
      }],
    });
    // No spot_policy means auto, and the requested GPU count reached the backend.
    expect(asked[0]!.spot).toBeNull();
    expect(asked[0]!.resources.gpu.count.min).toBe(1);
  });

  it('groups by backend, region and count', async () => {
    const response = await list(tokens.pu!, {
      ...runSpec({ gpu: 1 }),
      group_by: ['backend', 'region', 'count'],
    });
    expect(response.json().gpus.map((row: Record<string, unknown>) =>
      [row.backend, row.region, row.count, row.price])).toEqual([
      ['gpufake', 'r2', { min: 1, max: 1 }, { min: 0.6, max: 0.6 }],
      ['gpufake', 'r1', { min: 1, max: 1 }, { min: 1, max: 1 }],
      ['gpufake', 'r1', { min: 4, max: 4 }, { min: 1, max: 1 }],
    ]);
    expect(Object.keys(response.json().gpus[0])).not.toContain('backends');
  });

  it('honours the profile\'s spot policy and regions', async () => {
    const response = await list(tokens.pu!, runSpec({ gpu: 4 }, { regions: ['r1'] }));
    expect(response.json().gpus.map((row: { count: unknown }) => row.count))
      .toEqual([{ min: 4, max: 4 }]);

    await list(tokens.pu!, runSpec({ gpu: 1 }, { spot_policy: 'spot' }));
    expect(asked[1]!.spot).toBe(true);
  });

  it('answers an empty list when the project has no backends', async () => {
    await server.ctx.store.delete('backends', {});
    expect((await list(tokens.pu!, runSpec({ gpu: 1 }))).json()).toEqual({ gpus: [] });
  });

  it('checks guards, then the body, then the grouping', async () => {
    expect((await list(tokens.outsider!, {})).statusCode).toBe(403);
    expect([401, 403]).toContain((await list(null, {})).statusCode);
    expect((await list(tokens.pu!, {}, 'ghost')).statusCode).toBe(404);

    const missing = await list(tokens.pu!, {});
    expect(missing.statusCode).toBe(422);
    expect(missing.json().detail[0]).toMatchObject({ type: 'missing', loc: ['body', 'run_spec'] });

    const badGroup = await list(tokens.pu!, { ...runSpec({}), group_by: ['zone'] });
    expect(badGroup.statusCode).toBe(422);

    const regionOnly = await list(tokens.pu!, { ...runSpec({}), group_by: ['region'] });
    expect(regionOnly.statusCode).toBe(400);
    expect(regionOnly.json()).toEqual({
      detail: [{
        msg: "Cannot group by 'region' without also grouping by 'backend'",
        code: 'error',
      }],
    });
  });
});
