/**
 * End to end below the HTTP layer: the fixture SSH fleet, pointed at two real sshd hosts,
 * goes through core's fleet and run services and the real scheduler with this provider.
 */
import { readFileSync } from 'node:fs';
import {
  applyFleetPlan,
  applyRunPlan,
  deleteFleets,
  getOrCreateAdminUser,
  getOrCreateProject,
  startScheduler,
} from '@dstack/core';
import type {
  CoreContext,
  FleetSpec,
  InstanceRecord,
  JobRecord,
  LogEvent,
  ProjectRecord,
  RunRecord,
  Scheduler,
  UserRecord,
} from '@dstack/core';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createInstanceKeyResolver, createSshBackendProvider } from '../src/index.js';
import type { SshBackendProvider } from '../src/index.js';
import { schedulerContext } from './helpers.js';
import { generateKeyPair, startSshd } from './sshd-harness.js';
import type { SshdHost } from './sshd-harness.js';

const fixtures = new URL('../../../../shared/fixtures/configs/', import.meta.url);
const intervals = {
  jobsSubmitted: 50,
  jobsProvisioning: 50,
  jobsRunning: 100,
  jobsTerminating: 50,
  runsActive: 50,
  runsTerminating: 50,
  instancesPending: 100,
  instancesActive: 200,
  fleets: 200,
};

const userKey = generateKeyPair('user@laptop');
const hosts: SshdHost[] = [];
const originalKeys: string[] = [];
let ctx: CoreContext;
let user: UserRecord;
let project: ProjectRecord;
let provider: SshBackendProvider;
let scheduler: Scheduler;

function fixture(name: string): Record<string, unknown> {
  return parse(readFileSync(new URL(name, fixtures), 'utf8')) as Record<string, unknown>;
}

/** Waits until `check` gives a value, or fails with what it last saw. */
async function until<T>(check: () => Promise<T | undefined>, timeoutMillis = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMillis;
  for (;;) {
    const value = await check();
    if (value !== undefined) {
      return value;
    }

    if (Date.now() > deadline) {
      throw new Error('timed out waiting');
    }

    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function start(): void {
  provider = createSshBackendProvider({
    resolveKeys: createInstanceKeyResolver({ store: ctx.store, cipher: ctx.cipher }),
  });
  ctx.providers = new Map([['remote', provider]]);
  scheduler = startScheduler(ctx, { intervals, stopGraceMillis: 1000 });
}

async function stop(): Promise<void> {
  await scheduler?.stop();
  await provider?.close();
}

async function runFinished(runName: string): Promise<RunRecord> {
  return until(async () => {
    const [run] = await ctx.store.find('runs', { where: { runName, projectId: project.id } });

    return run !== undefined && ['done', 'failed', 'terminated'].includes(run.status)
      ? run
      : undefined;
  }, 60_000);
}

async function jobLogs(run: RunRecord, job: JobRecord): Promise<LogEvent[]> {
  const page = await ctx.logs.poll(
    {
      projectName: project.name,
      runName: run.runName,
      jobSubmissionId: job.id,
      producer: 'job',
    },
    { limit: 1000 },
  );

  return page.events;
}

async function submit(name: string, runName: string): Promise<void> {
  const configuration = fixture(name);
  await applyRunPlan(
    ctx,
    { project, user },
    {
      runSpec: {
        run_name: runName,
        repo_id: null,
        configuration,
        profile: null,
      },
      currentResource: null,
      force: false,
    },
  );
}

/**
 * Applies the fixture fleet as the CLI sends it: hosts pointed at the test sshd (one as a
 * string on the fleet's port, one as an object), identity_file read into ssh_key.
 */
async function applyFixtureFleet(placement?: string): Promise<void> {
  const configuration = fixture('fleet-ssh.dstack.yml');
  const ssh = configuration.ssh_config as Record<string, unknown>;
  const [first, second] = hosts;
  ssh.user = 'root';
  ssh.port = first.port;
  ssh.identity_file = null;
  ssh.ssh_key = { public: userKey.publicKey, private: userKey.privateKey };
  ssh.hosts = [first.address, { hostname: second.address, port: second.port }];
  configuration.placement = placement ?? configuration.placement;
  const spec = { configuration, configuration_path: null, profile: {}, autocreated: false };

  await applyFleetPlan(ctx, { project, user }, {
    spec: spec as unknown as FleetSpec,
    currentResource: null,
    force: false,
  });
}

beforeAll(async () => {
  for (const address of ['127.0.0.12', '127.0.0.13']) {
    const host = await startSshd({ address, authorizedKeys: [userKey.publicKey] });
    hosts.push(host);
    originalKeys.push(readFileSync(host.authorizedKeysPath, 'utf8'));
  }

  ctx = schedulerContext(new Map());
  user = (await getOrCreateAdminUser(ctx)).user;
  project = (await getOrCreateProject(ctx, user, 'main')).project;
  start();
});

afterAll(async () => {
  await stop();
  for (const host of hosts) {
    await host.stop();
  }

  await ctx?.store.close();
});

describe('the fleet-ssh fixture on two loopback hosts', () => {
  it('comes up with both instances idle', async () => {
    await applyFixtureFleet();

    const instances = await until(async () => {
      const rows = await ctx.store.find('instances', { where: { deleted: false } });
      const idle = rows.filter((row) => row.status === 'idle');

      return idle.length === 2 ? idle : undefined;
    });
    const byHost = new Map(
      instances.map((row: InstanceRecord) => [
        (row.provisioningData as { hostname: string }).hostname,
        row,
      ]),
    );
    expect([...byHost.keys()].sort()).toEqual(['127.0.0.12', '127.0.0.13']);
    expect(byHost.get('127.0.0.13')?.provisioningData).toMatchObject({
      backend: 'remote',
      ssh_port: hosts[1].port,
      username: 'root',
    });
    for (const host of hosts) {
      expect(readFileSync(host.authorizedKeysPath, 'utf8')).toContain('# added by dstack');
    }
  });

  it('runs task-hello with its logs', async () => {
    await submit('task-hello.dstack.yml', 'hello-ssh');

    const run = await runFinished('hello-ssh');
    const [job] = await ctx.store.find('jobs', { where: { runId: run.id } });

    expect(run.status).toBe('done');
    const events = await jobLogs(run, job);
    expect(events.map((event) => event.message).join('')).toBe(
      'hello from node 0 of 1\nline 1\nline 2\nline 3\nto stderr\n',
    );
    expect(events.at(-1)?.logSource).toBe('stderr');
  });

  it('runs task-multinode only once the fleet is a cluster, as the original', async () => {
    await submit('task-multinode.dstack.yml', 'two-nodes-any');
    const refused = await runFinished('two-nodes-any');
    const [refusedJob] = await ctx.store.find('jobs', { where: { runId: refused.id } });
    expect(refused.status).toBe('failed');
    expect(refusedJob.terminationReasonMessage).toMatch(/^No fleet matches the run/);

    const before = await ctx.store.find('instances', { where: { deleted: false } });
    await applyFixtureFleet('cluster');
    const after = await ctx.store.find('instances', { where: { deleted: false } });
    expect(after.map((row) => row.id).sort()).toEqual(before.map((row) => row.id).sort());
    await submit('task-multinode.dstack.yml', 'two-nodes-ssh');

    const run = await runFinished('two-nodes-ssh');
    const jobs = await ctx.store.find('jobs', {
      where: { runId: run.id },
      orderBy: [['jobNum', 'asc']],
    });

    expect(run.status).toBe('done');
    expect(jobs).toHaveLength(2);
    const texts = await Promise.all(
      jobs.map(async (job) => (await jobLogs(run, job)).map((event) => event.message).join('')),
    );
    const master = texts[0].match(/master=(\S+)/)?.[1];
    expect(['127.0.0.12', '127.0.0.13']).toContain(master);
    expect(texts[0]).toMatch(/^rank=0 nodes=2 master=127\.0\.0\.1[23]\nips=/);
    expect(texts[1]).toMatch(/^rank=1 nodes=2 master=127\.0\.0\.1[23]\nips=/);
    // DSTACK_NODES_IPS has one address a line, as in the original.
    for (const output of texts) {
      expect(output.split('ips=')[1].trim().split('\n').sort()).toEqual([
        '127.0.0.12',
        '127.0.0.13',
      ]);
    }
    const hostnames = jobs.map((job) => (job.provisioningData as { hostname: string }).hostname);
    expect(hostnames.sort()).toEqual(['127.0.0.12', '127.0.0.13']);
  });

  it('finishes a job across a server restart with its log complete and unduplicated', async () => {
    await submit('task-hello.dstack.yml', 'hello-restart');
    const job = await until(async () => {
      const [run] = await ctx.store.find('runs', { where: { runName: 'hello-restart' } });
      const [row] = run ? await ctx.store.find('jobs', { where: { runId: run.id } }) : [];

      return row?.status === 'running' ? row : undefined;
    });

    await stop();
    await new Promise((resolve) => setTimeout(resolve, 1500));
    start();

    const run = await runFinished('hello-restart');
    expect(run.status).toBe('done');
    const events = await jobLogs(run, job);
    expect(events.map((event) => event.message).join('')).toBe(
      'hello from node 0 of 1\nline 1\nline 2\nline 3\nto stderr\n',
    );
  });

  it('deleting the fleet leaves the hosts as they were', async () => {
    await deleteFleets(ctx, project, ['on-prem']);

    await until(async () => {
      const rows = await ctx.store.find('instances', { where: { deleted: false } });

      return rows.length === 0 ? true : undefined;
    });
    for (const [index, host] of hosts.entries()) {
      expect(readFileSync(host.authorizedKeysPath, 'utf8')).toBe(originalKeys[index]);
    }
  });
});
