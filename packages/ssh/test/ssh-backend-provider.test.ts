import { existsSync, readFileSync, statfsSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import type { JobProvisioningData, RemoteHost } from '@dstack/core';
import { contractRequirements } from '@dstack/core/testing';
import { createSshBackendProvider } from '../src/index.js';
import type { SshBackendProvider } from '../src/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentJob, isAlive, pullUntil, remoteHostFor, text, untilFinished } from './helpers.js';
import { generateKeyPair, startSshd } from './sshd-harness.js';
import type { SshdHost } from './sshd-harness.js';

const userKey = generateKeyPair('user@laptop');
const projectKey = generateKeyPair('dstack-project');
const hosts: SshdHost[] = [];
const originalKeys: string[] = [];
const remote: RemoteHost[] = [];
const data: JobProvisioningData[] = [];
let provider: SshBackendProvider;

beforeAll(async () => {
  for (const address of ['127.0.0.2', '127.0.0.3']) {
    const host = await startSshd({ address, authorizedKeys: [userKey.publicKey] });
    hosts.push(host);
    // A login shell that greets on stdout must not confuse the agent.
    writeFileSync(join(host.home, '.bashrc'), 'echo "Welcome to the lab"\n');
    originalKeys.push(readFileSync(host.authorizedKeysPath, 'utf8'));
    const env = { FLEET_VAR: `fleet-${address}` };
    remote.push(remoteHostFor(host, userKey, projectKey, { env }));
  }

  provider = createSshBackendProvider({ connectTimeoutMillis: 5000, stopGraceSeconds: 1 });
});

afterAll(async () => {
  await provider?.close();
  for (const host of hosts) {
    await host.stop();
  }
});

describe('the provider', () => {
  it('is the remote type, offers nothing and refuses to be configured as a backend', async () => {
    const settings = { projectName: 'main', config: {}, creds: null };

    expect(provider.type).toBe('remote');
    expect(provider.capabilities).toEqual({
      images: false, multinode: true, sharedHostPorts: true,
    });
    expect(await provider.getOffers({ ...settings, requirements: contractRequirements(1) }))
      .toEqual([]);
    await expect(provider.checkConfig?.(settings)).rejects.toMatchObject({
      status: 400,
      message: expect.stringMatching(/^The remote backend cannot be configured/),
    });
  });
});

describe('provisionHost', () => {
  it('measures both hosts and installs the tagged project key and the runner', async () => {
    for (const [index, host] of hosts.entries()) {
      const provisioned = await provider.provisionHost(remote[index], { timeoutMillis: 30_000 });
      data.push(provisioned.provisioningData);
      const pd = provisioned.provisioningData;
      const resources = pd.instance_type.resources;

      expect(pd).toMatchObject({
        backend: 'remote',
        hostname: host.address,
        internal_ip: host.address,
        region: 'remote',
        price: 0,
        username: 'root',
        ssh_port: host.port,
        dockerized: false,
        ssh_proxy: null,
      });
      expect(pd.instance_type.name).toBe('ssh');
      expect(resources.cpus).toBe(cpus().length);
      expect(resources.memory_mib).toBe(Math.floor(totalmem() / 1024 / 1024));
      expect(resources.cpu_arch).toBe(process.arch === 'arm64' ? 'arm' : 'x86');
      expect(resources.gpus).toEqual([]);
      const disk = statfsSync(host.home);
      const diskMib = Math.floor((disk.blocks * disk.bsize) / 1024 / 1024);
      expect(resources.disk.size_mib).toBe(diskMib);
      expect(provisioned.totalBlocks).toBe(cpus().length);

      const keys = readFileSync(host.authorizedKeysPath, 'utf8');
      expect(keys).toBe(`${originalKeys[index]}${projectKey.publicKey} # added by dstack\n`);
      expect(existsSync(join(host.home, '.dstack-agent', 'runner.py'))).toBe(true);
    }
  });

  it('does not add the project key twice when a host is provisioned again', async () => {
    await provider.provisionHost(remote[0], { timeoutMillis: 30_000 });

    const keys = readFileSync(hosts[0].authorizedKeysPath, 'utf8');
    expect(keys.split(projectKey.publicKey).length - 1).toBe(1);
  });
});

describe('the agent', () => {
  it('runs a job on each host with its logs, env, working directory and exit status', async () => {
    const agentA = provider.agent(data[0]);
    const agentB = provider.agent(data[1]);
    await agentA.healthcheck();
    await agentB.healthcheck();
    const longLine = 'x'.repeat(20_000);
    const jobA = agentJob(
      [
        'echo out1',
        'sleep 0.3',
        'echo err1 >&2',
        'sleep 0.3',
        'echo "$FLEET_VAR $JOB_VAR $(pwd)"',
        `python3 -c "import sys; sys.stdout.buffer.write(b'bad \\xff\\xfe bytes\\n')"`,
        `head -c 20000 /dev/zero | tr '\\0' x; echo`,
        'exit 7',
        'echo never',
      ],
      { env: { JOB_VAR: 'job-a' }, workingDir: 'sub/dir' },
    );
    const jobB = agentJob(['echo "hello from b"', 'echo "$FLEET_VAR"']);
    await agentA.submit(jobA);
    await agentB.submit(jobB);

    const [a, b] = await Promise.all([
      untilFinished(agentA, jobA.jobSubmissionId),
      untilFinished(agentB, jobB.jobSubmissionId),
    ]);

    const workDir = join(hosts[0].home, '.dstack-agent', 'jobs', jobA.jobSubmissionId, 'work');
    expect(a.state).toEqual({
      status: 'failed',
      exitStatus: 7,
      terminationReason: 'container_exited_with_error',
      message: 'exit status 7',
    });
    expect(text(a.jobLogs, 'stdout')).toBe(
      `out1\nfleet-127.0.0.2 job-a ${workDir}/sub/dir\nbad \ufffd\ufffd bytes\n${longLine}\n`,
    );
    expect(text(a.jobLogs, 'stderr')).toBe('err1\n');
    expect(a.jobLogs.slice(0, 2).map((event) => [event.logSource, event.message])).toEqual([
      ['stdout', 'out1\n'],
      ['stderr', 'err1\n'],
    ]);
    expect(Math.max(...a.jobLogs.map((event) => event.message.length))).toBeLessThan(10_000);
    const stamps = [...a.jobLogs, ...a.runnerLogs].map((event) => event.timestamp);
    expect(new Set(stamps).size).toBe(stamps.length);
    for (let index = 1; index < a.jobLogs.length; index += 1) {
      expect(a.jobLogs[index].timestamp).toBeGreaterThan(a.jobLogs[index - 1].timestamp);
    }
    expect(text(a.runnerLogs)).toContain('job exited with status 7');

    expect(b.state).toMatchObject({
      status: 'done',
      exitStatus: 0,
      terminationReason: 'done_by_runner',
    });
    expect(text(b.jobLogs)).toBe('hello from b\nfleet-127.0.0.3\n');

    // A second submit of the same submission starts nothing.
    await agentB.submit(jobB);
    const again = await untilFinished(agentB, jobB.jobSubmissionId);
    expect(text(again.jobLogs)).toBe('hello from b\nfleet-127.0.0.3\n');
  });

  it('runs a dozen jobs at once on one host over one pooled connection', async () => {
    const agent = provider.agent(data[1]);
    const jobs = Array.from({ length: 12 }, (_, index) =>
      agentJob([`echo "job ${index} start"`, 'sleep 0.5', `echo "job ${index} end"`]),
    );

    await Promise.all(jobs.map((job) => agent.submit(job)));
    const results = await Promise.all(jobs.map((job) => untilFinished(agent, job.jobSubmissionId)));

    expect(results.map((result) => text(result.jobLogs))).toEqual(
      jobs.map((_, index) => `job ${index} start\njob ${index} end\n`),
    );
    expect(results.every((result) => result.state?.status === 'done')).toBe(true);
    expect(await hosts[1].connectionCount()).toBe(1);
  });

  it('stops a job gracefully with SIGTERM to its process group', async () => {
    const agent = provider.agent(data[0]);
    const job = agentJob([
      "trap 'echo got term; exit 0' TERM",
      'echo ready',
      'while true; do sleep 0.1; done',
    ]);
    await agent.submit(job);
    await pullUntil(agent, job.jobSubmissionId, (p) => text(p.jobLogs).includes('ready'));

    await agent.stop(job.jobSubmissionId, { force: false });
    const result = await untilFinished(agent, job.jobSubmissionId, { timeoutMillis: 5000 });

    expect(result.state).toMatchObject({
      status: 'terminated',
      exitStatus: 0,
      terminationReason: 'terminated_by_user',
    });
    expect(text(result.jobLogs, 'stdout')).toBe('ready\ngot term\n');
  });

  it('kills a job that ignores SIGTERM when the stop is forced', async () => {
    const agent = provider.agent(data[1]);
    const job = agentJob(["trap '' TERM", 'echo ready', 'while true; do sleep 0.1; done']);
    await agent.submit(job);
    await pullUntil(agent, job.jobSubmissionId, (p) => text(p.jobLogs).includes('ready'));

    await agent.stop(job.jobSubmissionId, { force: false });
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const still = await agent.pull(job.jobSubmissionId, 0);
    expect(still.state?.status).toBe('running');

    await agent.stop(job.jobSubmissionId, { force: true });
    const result = await untilFinished(agent, job.jobSubmissionId, { timeoutMillis: 5000 });

    expect(result.state).toMatchObject({ status: 'terminated', exitStatus: 137 });
  });

  it('ends a job at max_duration, forcibly when it ignores SIGTERM', async () => {
    const agent = provider.agent(data[0]);
    const job = agentJob(["trap '' TERM", 'sleep 30'], { maxDurationSeconds: 1 });
    const started = Date.now();
    await agent.submit(job);

    const result = await untilFinished(agent, job.jobSubmissionId, { timeoutMillis: 8000 });

    expect(result.state).toMatchObject({
      status: 'terminated',
      exitStatus: 137,
      terminationReason: 'max_duration_exceeded',
    });
    expect(Date.now() - started).toBeLessThan(6000);
    expect(text(result.runnerLogs)).toContain('max_duration of 1s exceeded');
  });

  it('keeps a job running across a server restart, its log complete and unduplicated', async () => {
    const first = provider.agent(data[1]);
    const job = agentJob(['for i in $(seq 1 30); do echo "line $i"; sleep 0.1; done']);
    await first.submit(job);
    const before = await pullUntil(first, job.jobSubmissionId, (p) => p.jobLogs.length >= 3);
    expect(before.state?.status).toBe('running');

    // The server goes away: every connection closes while the job keeps running.
    await first.close?.();
    await provider.close();
    await new Promise((resolve) => setTimeout(resolve, 1000));

    const restarted = createSshBackendProvider({
      resolveKeys: async (pd) => {
        expect(pd.hostname).toBe('127.0.0.3');

        return { privateKey: projectKey.privateKey, proxyPrivateKey: null };
      },
    });
    try {
      const after = await untilFinished(restarted.agent(data[1]), job.jobSubmissionId, {
        cursor: before.cursor,
      });
      const lines = Array.from({ length: 30 }, (_, index) => `line ${index + 1}\n`);

      expect(after.state).toMatchObject({ status: 'done', exitStatus: 0 });
      expect(text([...before.jobLogs, ...after.jobLogs])).toBe(lines.join(''));
      expect(after.jobLogs.length).toBeGreaterThan(0);
    } finally {
      await restarted.close();
    }
  });

  it('reconnects when the connection drops under a running job, losing nothing', async () => {
    const agent = provider.agent(data[0]);
    const job = agentJob(['for i in $(seq 1 20); do echo "tick $i"; sleep 0.1; done']);
    await agent.submit(job);
    const before = await pullUntil(agent, job.jobSubmissionId, (p) => p.jobLogs.length >= 3);

    expect(await hosts[0].dropConnections()).toBeGreaterThan(0);
    const after = await untilFinished(agent, job.jobSubmissionId, { cursor: before.cursor });

    const ticks = Array.from({ length: 20 }, (_, index) => `tick ${index + 1}\n`);
    expect(text([...before.jobLogs, ...after.jobLogs])).toBe(ticks.join(''));
    expect(after.state).toMatchObject({ status: 'done', exitStatus: 0 });
  });

  it('refuses to guess a key for a host it did not provision and cannot resolve', async () => {
    const stranger = createSshBackendProvider();
    try {
      await expect(stranger.agent(data[0]).healthcheck()).rejects.toThrow(
        `root@127.0.0.2:${hosts[0].port}: no project key is known for this host`,
      );
    } finally {
      await stranger.close();
    }
  });

  it('pages an event larger than a page whole', async () => {
    const small = createSshBackendProvider({
      pullMaxBytes: 4096,
      resolveKeys: async () => ({ privateKey: projectKey.privateKey, proxyPrivateKey: null }),
    });
    try {
      const agent = small.agent(data[0]);
      const job = agentJob([`python3 -c "print('\u00e9' * 20000)"`]);
      await agent.submit(job);

      const result = await untilFinished(agent, job.jobSubmissionId);

      expect(text(result.jobLogs)).toBe(`${'\u00e9'.repeat(20_000)}\n`);
      expect(result.jobLogs.length).toBeGreaterThan(2);
    } finally {
      await small.close();
    }
  });

  it('forgets a removed job and reports none for an unknown one', async () => {
    const agent = provider.agent(data[0]);
    const job = agentJob(['echo bye']);
    await agent.submit(job);
    await untilFinished(agent, job.jobSubmissionId);

    await agent.remove(job.jobSubmissionId);

    const removed = await agent.pull(job.jobSubmissionId, 0);
    expect(removed).toEqual({
      state: null,
      jobLogs: [],
      runnerLogs: [],
      cursor: 0,
      hasMore: false,
    });
    expect(existsSync(join(hosts[0].home, '.dstack-agent', 'jobs', job.jobSubmissionId))).toBe(
      false,
    );
  });
});

describe('a host that restarted under a job', () => {
  it('reports the job as failed once its supervisor is gone', async () => {
    const agent = provider.agent(data[1]);
    const job = agentJob(['echo up', 'sleep 60']);
    await agent.submit(job);
    await pullUntil(agent, job.jobSubmissionId, (p) => text(p.jobLogs).includes('up'));
    const dir = join(hosts[1].home, '.dstack-agent', 'jobs', job.jobSubmissionId);
    const state = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as {
      pgid: number;
      supervisor_pid: number;
    };

    process.kill(state.supervisor_pid, 'SIGKILL');
    process.kill(-state.pgid, 'SIGKILL');
    const result = await untilFinished(agent, job.jobSubmissionId, { timeoutMillis: 5000 });

    expect(result.state).toEqual({
      status: 'failed',
      exitStatus: null,
      terminationReason: 'executor_error',
      message: 'the job supervisor is gone (host restarted or killed)',
    });
    expect(text(result.jobLogs)).toBe('up\n');
  });
});

describe('releaseHost', () => {
  it('ends running jobs and leaves authorized_keys and the home as before', async () => {
    const agent = provider.agent(data[0]);
    const job = agentJob(['echo running', 'sleep 60']);
    await agent.submit(job);
    await pullUntil(agent, job.jobSubmissionId, (p) => text(p.jobLogs).includes('running'));
    const statePath = join(hosts[0].home, '.dstack-agent', 'jobs', job.jobSubmissionId);
    const state = JSON.parse(readFileSync(join(statePath, 'state.json'), 'utf8')) as {
      pgid: number;
      supervisor_pid: number;
    };
    expect(isAlive(state.pgid)).toBe(true);

    for (const [index, host] of hosts.entries()) {
      await provider.releaseHost(remote[index]);

      expect(readFileSync(host.authorizedKeysPath, 'utf8')).toBe(originalKeys[index]);
      expect(existsSync(join(host.home, '.dstack-agent'))).toBe(false);
    }

    expect(isAlive(state.pgid)).toBe(false);
    expect(isAlive(state.supervisor_pid)).toBe(false);
  });
});
