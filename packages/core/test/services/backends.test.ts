import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import {
  BackendInvalidCredentialsError,
  BackendNotAvailableError,
  createBackend,
  createBackendYaml,
  createCipher,
  createLocalBackendProvider,
  deleteBackends,
  ForbiddenError,
  getBackendConfigInfo,
  getBackendYaml,
  listProjectBackends,
  listProjectBackendsForWire,
  ResourceExistsError,
  ResourceNotExistsError,
  ServerClientError,
  syncConfigBackends,
  updateBackend,
  updateBackendYaml,
} from '@dstack/core';
import type {
  BackendProvider,
  BackendSettings,
  BackendsScope,
  ConfigProjectBackends,
  InstanceRecord,
  ProjectRecord,
  UserRecord,
} from '@dstack/core';
import { addProject, addUser, createTestContext } from '../crypto/test-context.js';
import type { TestContext } from '../crypto/test-context.js';

const sharedFixtures = join(import.meta.dirname, '../../../../../shared/fixtures');

/** A cloud-like plug-in: an API key checked against the "cloud" before it is stored. */
function createKeyedProvider(type: string, checks: BackendSettings[] = []): BackendProvider {
  return {
    type,
    capabilities: { images: true, multinode: false },
    configSchema: {
      type: 'object',
      additionalProperties: false,
      required: ['type', 'creds'],
      properties: {
        type: { const: type },
        regions: { type: 'array', items: { type: 'string' } },
        community_cloud: { type: 'boolean', default: false },
        creds: {
          type: 'object',
          additionalProperties: false,
          required: ['type', 'api_key'],
          properties: { type: { const: 'api_key' }, api_key: { type: 'string' } },
        },
      },
    },
    async checkConfig(settings) {
      checks.push(settings);

      if (settings.creds?.api_key !== 'good-key') {
        throw new BackendInvalidCredentialsError('Invalid credentials', [['creds', 'api_key']]);
      }
    },
    getOffers: async () => [],
    createInstance: async () => {
      throw new Error('not used');
    },
    terminateInstance: async () => undefined,
    agent: () => {
      throw new Error('not used');
    },
  };
}

const goodRunpod = {
  type: 'runpod',
  regions: ['eu-1', 'us-2'],
  creds: { type: 'api_key', api_key: 'good-key' },
};

let ctx: TestContext;
let admin: UserRecord;
let project: ProjectRecord;
let scope: BackendsScope;
let checks: BackendSettings[];
let serverDir: string;

beforeEach(async () => {
  checks = [];
  serverDir = mkdtempSync(join(tmpdir(), 'backends-test-'));
  ctx = createTestContext({
    providers: [
      createKeyedProvider('runpod', checks),
      createKeyedProvider('vastai'),
      createLocalBackendProvider({ serverDir }),
    ],
  });
  admin = await addUser(ctx, 'admin', 'admin');
  project = await addProject(ctx, 'main', admin);
  scope = { user: admin, project };
});

afterEach(() => {
  rmSync(serverDir, { recursive: true, force: true });
});

async function addInstance(backend: string, status: string): Promise<void> {
  await ctx.store.insert('instances', {
    id: crypto.randomUUID(), projectId: project.id, fleetId: null, name: `i-${status}`,
    instanceNum: 0, createdAt: ctx.now(), lastProcessedAt: ctx.now(), deleted: false,
    deletedAt: null, status, unreachable: false, startedAt: null, finishedAt: null, backend,
    region: null, availabilityZone: null, price: null, instanceType: null, offer: null,
    provisioningData: null, remoteConnectionInfo: null, profile: null, totalBlocks: 1,
    busyBlocks: 0, terminationPolicy: null, terminationIdleTime: 300, terminationDeadline: null,
    terminationReason: null, terminationReasonMessage: null, lastJobProcessedAt: null,
    provisioningJobId: null, health: 'healthy', firstTerminationRetryAt: null,
    lockToken: null, lockOwner: null, lockExpiresAt: null,
  } satisfies InstanceRecord);
}

describe('backends', () => {
  it('creates a backend with its credentials encrypted and checked first', async () => {
    const created = await createBackend(ctx, scope, goodRunpod);

    expect(created).toEqual({ ...goodRunpod, community_cloud: null });
    expect(checks).toEqual([{
      projectName: 'main',
      config: { type: 'runpod', regions: ['eu-1', 'us-2'], community_cloud: false },
      creds: { type: 'api_key', api_key: 'good-key' },
    }]);

    const [row] = await ctx.store.find('backends');
    expect(row.config).toEqual({
      type: 'runpod',
      regions: ['eu-1', 'us-2'],
      community_cloud: false,
    });
    expect(row.sourceConfig).toEqual({ type: 'runpod', regions: ['eu-1', 'us-2'] });
    expect(row.auth).toMatch(/^enc:aes:key2:/);
    expect(row.sourceAuth).toMatch(/^enc:aes:key2:/);
    expect(JSON.stringify(row)).not.toContain('good-key');
    expect(ctx.cipher.decrypt(row.auth!)).toBe('{"type":"api_key","api_key":"good-key"}');
  });

  it('refuses bad credentials with invalid_credentials and the fields', async () => {
    const bad = { ...goodRunpod, creds: { type: 'api_key', api_key: 'wrong-key' } };
    const failure = await createBackend(ctx, scope, bad).catch((error: unknown) => error);

    expect(failure).toBeInstanceOf(BackendInvalidCredentialsError);
    expect((failure as BackendInvalidCredentialsError).body()).toEqual({
      detail: [
        { msg: 'Invalid credentials', code: 'invalid_credentials', fields: ['creds', 'api_key'] },
      ],
    });
    expect(await ctx.store.count('backends')).toBe(0);
    expect(ctx.logger.lines.join()).not.toContain('wrong-key');
  });

  it('refuses a config that does not fit the schema, naming the fields', async () => {
    const failure = createBackend(ctx, scope, { type: 'runpod', creds: { type: 'api_key' }, x: 1 });

    await expect(failure).rejects.toThrow(ServerClientError);
    await expect(
      createBackend(ctx, scope, { type: 'runpod', creds: { type: 'api_key' }, x: 1 }),
    ).rejects.toThrow(/config\.x: extra fields not permitted; creds\.api_key: field required/);
  });

  it('refuses a duplicate type, an unknown type and an update of a missing one', async () => {
    await createBackend(ctx, scope, goodRunpod);

    await expect(createBackend(ctx, scope, goodRunpod)).rejects.toThrow(ResourceExistsError);
    await expect(createBackend(ctx, scope, { type: 'aws' })).rejects.toThrow(
      BackendNotAvailableError,
    );
    await expect(
      updateBackend(ctx, scope, { ...goodRunpod, type: 'vastai' }),
    ).rejects.toThrow(ResourceNotExistsError);
  });

  it('updates in place and shows config_info with creds, every field listed', async () => {
    await createBackend(ctx, scope, goodRunpod);
    const [before] = await ctx.store.find('backends');
    await updateBackend(ctx, scope, { ...goodRunpod, regions: ['ca-1'], community_cloud: true });
    const rows = await ctx.store.find('backends');

    expect(rows).toHaveLength(1);
    expect(rows[0].id).toBe(before.id);
    expect(await getBackendConfigInfo(ctx, scope, 'runpod')).toEqual({
      type: 'runpod',
      regions: ['ca-1'],
      community_cloud: true,
      creds: { type: 'api_key', api_key: 'good-key' },
    });
    await expect(getBackendConfigInfo(ctx, scope, 'vastai')).rejects.toThrow(
      ResourceNotExistsError,
    );
  });

  it('lists backends for projects/{p}/get without credentials', async () => {
    await createBackend(ctx, scope, goodRunpod);
    await createBackend(ctx, scope, { type: 'local' });

    expect(await listProjectBackendsForWire(ctx, project.id)).toEqual([
      { name: 'local', config: { type: 'local' } },
      {
        name: 'runpod',
        config: { type: 'runpod', regions: ['eu-1', 'us-2'], community_cloud: false },
      },
    ]);
  });

  it('lets only a global admin add or change the local backend', async () => {
    const projectAdmin = await addUser(ctx, 'padmin');
    const asProjectAdmin = { user: projectAdmin, project };
    const failure = createBackend(ctx, asProjectAdmin, { type: 'local' });

    await expect(failure).rejects.toThrow(ForbiddenError);
    await expect(createBackend(ctx, asProjectAdmin, { type: 'local' })).rejects.toThrow(
      /only global admins/,
    );
    expect(await ctx.store.count('backends')).toBe(0);

    await createBackend(ctx, scope, { type: 'local' });
    await expect(updateBackend(ctx, asProjectAdmin, { type: 'local' })).rejects.toThrow(
      ForbiddenError,
    );
    await createBackend(ctx, asProjectAdmin, goodRunpod);
    expect(await ctx.store.count('backends')).toBe(2);
  });

  it('deletes, but not a backend with active instances nor dstack', async () => {
    await createBackend(ctx, scope, goodRunpod);
    await createBackend(ctx, scope, { ...goodRunpod, type: 'vastai' });
    await addInstance('runpod', 'idle');
    await addInstance('vastai', 'terminated');

    await expect(deleteBackends(ctx, scope, ['runpod', 'vastai'])).rejects.toThrow(
      'Backend runpod has active instances. Delete instances before deleting the backend.',
    );
    expect(await ctx.store.count('backends')).toBe(2);
    await expect(deleteBackends(ctx, scope, ['dstack'])).rejects.toThrow(
      'Cannot delete dstack backend',
    );

    await deleteBackends(ctx, scope, ['vastai', 'aws']);
    expect((await ctx.store.find('backends')).map((row) => row.type)).toEqual(['runpod']);
  });

  it('round-trips YAML and dumps it the way the original does', async () => {
    await createBackendYaml(ctx, scope, [
      'type: runpod',
      'regions: [eu-1, us-2]',
      'creds:',
      '  type: api_key',
      '  api_key: good-key',
    ].join('\n'));
    const dumped = await getBackendYaml(ctx, scope, 'runpod');

    expect(dumped).toEqual({
      name: 'runpod',
      config_yaml: [
        'type: runpod',
        'regions: [eu-1, us-2]',
        'community_cloud: false',
        'creds:',
        '  type: api_key',
        '  api_key: good-key',
        '',
      ].join('\n'),
    });
    expect(parse(dumped.config_yaml)).toEqual(await getBackendConfigInfo(ctx, scope, 'runpod'));

    await updateBackendYaml(ctx, scope, dumped.config_yaml.replace('false', 'true'));
    expect((await getBackendConfigInfo(ctx, scope, 'runpod')).community_cloud).toBe(true);
    await expect(createBackendYaml(ctx, scope, 'type: [unclosed')).rejects.toThrow(
      'Error parsing YAML',
    );
  });

  it('leaves out, with a warning, backends whose creds no key can decrypt', async () => {
    await createBackend(ctx, scope, goodRunpod);
    const other = createTestContext();
    other.store = ctx.store;
    const secret = Buffer.alloc(32, 9).toString('base64');
    other.cipher = createCipher([{ type: 'aes', name: 'key9', secret }]);
    other.providers = ctx.providers;

    expect(await listProjectBackends(other, project)).toEqual([]);
    expect(other.logger.lines.join()).toContain('Failed to decrypt creds for runpod backend');
    await expect(getBackendConfigInfo(other, scope, 'runpod')).rejects.toThrow(
      ResourceNotExistsError,
    );

    const usable = await listProjectBackends(ctx, project);
    expect(usable.map((backend) => [backend.type, backend.settings.creds])).toEqual([
      ['runpod', { type: 'api_key', api_key: 'good-key' }],
    ]);
  });
});

describe('syncConfigBackends', () => {
  it('creates, skips unchanged, updates changed and deletes unlisted backends', async () => {
    const first = await syncConfigBackends(ctx, [
      { name: 'main', backends: [goodRunpod, { type: 'local' }] },
    ]);

    expect(first).toEqual([{
      projectName: 'main', created: ['runpod', 'local'], updated: [], unchanged: [], deleted: [],
      kept: [], failed: [],
    }]);
    expect(checks).toHaveLength(1);

    const again = await syncConfigBackends(ctx, [
      { name: 'main', backends: [goodRunpod, { type: 'local' }] },
    ]);
    expect(again[0].unchanged).toEqual(['runpod', 'local']);
    expect(checks).toHaveLength(1);

    const changed = await syncConfigBackends(ctx, [
      { name: 'main', backends: [{ ...goodRunpod, regions: ['ca-1'] }] },
    ]);
    expect(changed[0]).toMatchObject({ updated: ['runpod'], deleted: ['local'] });
    expect((await ctx.store.find('backends')).map((row) => row.type)).toEqual(['runpod']);
  });

  it('keeps a backend that active instances use, and says which and why', async () => {
    await syncConfigBackends(ctx, [{ name: 'main', backends: [goodRunpod, { type: 'local' }] }]);
    await addInstance('local', 'busy');

    const result = await syncConfigBackends(ctx, [{ name: 'MAIN', backends: [] }]);

    expect(result[0]).toMatchObject({ deleted: ['runpod'], kept: ['local'] });
    expect((await ctx.store.find('backends')).map((row) => row.type)).toEqual(['local']);
    const warning = ctx.logger.lines.find((line) => line.includes('still use it'));
    expect(JSON.parse(warning!)).toMatchObject({
      level: 'warn',
      fields: { projectName: 'main', backend: 'local' },
    });
  });

  it('logs failures as warnings and goes on', async () => {
    const result = await syncConfigBackends(ctx, [
      { name: 'main', backends: [{ ...goodRunpod, creds: { type: 'api_key', api_key: 'bad' } }] },
      { name: 'missing', backends: [goodRunpod] },
      { name: 'main', backends: [{ type: 'aws', creds: { type: 'default' } }] },
    ]);

    expect(result.map((entry) => entry.failed)).toEqual([['runpod'], ['aws']]);
    const logged = ctx.logger.lines.join('\n');
    expect(logged).toContain('Failed to create backend runpod in project main');
    expect(logged).toContain('config.yml lists a project that does not exist');
    expect(logged).not.toContain('"bad"');
  });

  it('rewrites from config.yml a backend whose creds no key can decrypt any more', async () => {
    const lost = createTestContext({
      keys: [{ type: 'aes', name: 'lost', secret: Buffer.alloc(32, 7).toString('base64') }],
    });
    lost.store = ctx.store;
    lost.providers = ctx.providers;
    await createBackend(lost, scope, goodRunpod);

    const result = await syncConfigBackends(ctx, [{ name: 'main', backends: [goodRunpod] }]);

    expect(result[0].updated).toEqual(['runpod']);
    const [row] = await ctx.store.find('backends');
    expect(row.auth).toMatch(/^enc:aes:key2:/);
    expect((await getBackendConfigInfo(ctx, scope, 'runpod')).creds).toEqual(goodRunpod.creds);
  });

  it('applies the backends of fixtures/server/config-aes.yml', async () => {
    const config = parse(
      readFileSync(join(sharedFixtures, 'server/config-aes.yml'), 'utf8'),
    ) as { projects: ConfigProjectBackends[] };

    const result = await syncConfigBackends(ctx, config.projects);

    expect(result).toEqual([{
      projectName: 'main', created: ['local'], updated: [], unchanged: [], deleted: [], kept: [],
      failed: [],
    }]);
    expect(await listProjectBackendsForWire(ctx, project.id)).toEqual([
      { name: 'local', config: { type: 'local' } },
    ]);
  });

  it('reads credentials given by filename into data', async () => {
    const file = join(serverDir, 'key.txt');
    writeFileSync(file, 'good-key');
    const provider = createKeyedProvider('kubernetes');
    (ctx.providers as Map<string, BackendProvider>).set('kubernetes', {
      ...provider,
      configSchema: undefined,
      async checkConfig(settings) {
        checks.push(settings);
      },
    });

    const result = await syncConfigBackends(ctx, [
      { name: 'main', backends: [{ type: 'kubernetes', kubeconfig: { filename: file } }] },
    ]);

    expect(result[0].created).toEqual(['kubernetes']);
    expect(checks[0].config).toEqual({
      type: 'kubernetes',
      kubeconfig: { filename: file, data: 'good-key' },
    });
  });
});
