import { randomUUID } from 'node:crypto';
import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalBackendProvider } from '@dstack/core';
import type {
  AgentGitRepo,
  AgentJob,
  AgentPull,
  AgentRepo,
  BackendProvider,
  InstanceAgent,
  JobProvisioningData,
  LogEvent,
  Requirements,
} from '@dstack/core';
import {
  contractRequirements,
  createGitRepoFixture,
  createTarArchive,
  runBackendProviderContract,
} from '@dstack/core/testing';

// How far a burst's last stamp may run past the job's end. Stamping one millisecond per line
// ran 40 to 50 s ahead on these jobs; the bound leaves room for a machine busy with other
// work, where the reader lags behind the pipe.
const maxLeadMillis = 5000;

const settings = { projectName: 'main', config: { type: 'local' }, creds: null };
const contractDirs: string[] = [];

runBackendProviderContract('local', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'local-contract-'));
  contractDirs.push(dir);
  return createLocalBackendProvider({ serverDir: dir });
}, {
  repos: true,
  metrics: true,
  cleanup: async () => {
    for (const dir of contractDirs) {
      await rm(dir, { recursive: true, force: true });
    }
  },
});

function requirementsWith(change: (value: Requirements) => void): Requirements {
  const value = contractRequirements(1);
  change(value);
  return value;
}

describe('local backend offers', () => {
  let serverDir: string;

  beforeAll(async () => {
    serverDir = await mkdtemp(join(tmpdir(), 'local-offers-'));
  });

  afterAll(async () => {
    await rm(serverDir, { recursive: true, force: true });
  });

  it('offers this machine, free, in region local', async () => {
    const provider = createLocalBackendProvider({ serverDir, nvidiaSmiPath: '/nonexistent' });
    const offers = await provider.getOffers({ ...settings, requirements: contractRequirements(1) });

    expect(offers).toHaveLength(1);
    expect(offers[0]).toMatchObject({
      backend: 'local',
      region: 'local',
      price: 0,
      availability: 'available',
      instance: { name: 'local' },
    });
    expect(offers[0].instance.resources.cpus).toBe(availableParallelism());
    expect(offers[0].instance.resources.memory_mib).toBe(Math.floor(totalmem() / 1024 / 1024));
    expect(offers[0].instance.resources.gpus).toEqual([]);
    expect(offers[0].instance.resources.disk.size_mib).toBeGreaterThan(0);
    expect(provider.capabilities).toEqual({
      images: false, multinode: true, sharedHostPorts: true,
    });
  });

  it('gives no offer to a job that needs more than the machine', async () => {
    const provider = createLocalBackendProvider({ serverDir, nvidiaSmiPath: '/nonexistent' });
    const cpus = availableParallelism();
    const memoryGb = totalmem() / 1024 ** 3;
    const tooMuch: Requirements[] = [
      contractRequirements(cpus + 1),
      requirementsWith((value) => {
        value.resources.memory = { min: Math.ceil(memoryGb) + 1, max: null };
      }),
      requirementsWith((value) => {
        value.resources.disk = { size: { min: 1_000_000, max: null } };
      }),
      requirementsWith((value) => {
        value.resources.gpu = { ...value.resources.gpu, name: ['A100'], count: { min: 8, max: 8 } };
      }),
      requirementsWith((value) => {
        value.spot = true;
      }),
    ];

    for (const requirements of tooMuch) {
      expect(await provider.getOffers({ ...settings, requirements })).toEqual([]);
    }

    const fits = requirementsWith((value) => {
      value.resources.cpu.count = { min: cpus, max: null };
      value.resources.memory = { min: Math.floor(memoryGb) - 1, max: null };
    });
    expect(await provider.getOffers({ ...settings, requirements: fits })).toHaveLength(1);
  });

  it('reports the GPUs nvidia-smi lists and matches them by name, count and memory', async () => {
    const fake = join(serverDir, 'nvidia-smi');
    await writeFile(fake, [
      '#!/bin/sh',
      'echo "NVIDIA A100-SXM4-80GB, 81920"',
      'echo "NVIDIA A100-SXM4-80GB, 81920"',
      '',
    ].join('\n'));
    await chmod(fake, 0o755);
    const provider = createLocalBackendProvider({ serverDir, nvidiaSmiPath: fake });
    const a100 = (count: number, memoryGb: number): Requirements => requirementsWith((value) => {
      value.resources.gpu = {
        ...value.resources.gpu,
        vendor: 'nvidia',
        name: ['A100'],
        count: { min: count, max: count },
        memory: { min: memoryGb, max: null },
      };
    });

    const offers = await provider.getOffers({ ...settings, requirements: a100(2, 80) });

    expect(offers).toHaveLength(1);
    expect(offers[0].instance.resources.gpus).toEqual([
      { name: 'A100', memory_mib: 81920, vendor: 'nvidia' },
      { name: 'A100', memory_mib: 81920, vendor: 'nvidia' },
    ]);
    expect(await provider.getOffers({ ...settings, requirements: a100(8, 80) })).toEqual([]);
    expect(await provider.getOffers({ ...settings, requirements: a100(1, 96) })).toEqual([]);
  });
});

describe('local backend jobs', () => {
  let serverDir: string;
  let provider: BackendProvider;
  let data: JobProvisioningData;
  let agent: InstanceAgent;

  beforeAll(async () => {
    serverDir = await mkdtemp(join(tmpdir(), 'local-jobs-'));
    provider = createLocalBackendProvider({ serverDir, nvidiaSmiPath: '/nonexistent' });
    const requirements = contractRequirements(1);
    const [offer] = await provider.getOffers({ ...settings, requirements });
    const instanceId = randomUUID();
    data = await provider.createInstance({
      ...settings, offer, instanceName: 'local-0', instanceId,
    });
    agent = provider.agent(data);
  });

  afterAll(async () => {
    await provider.terminateInstance({ ...settings, provisioningData: data });
    await rm(serverDir, { recursive: true, force: true });
  });

  function job(commands: string[], extra: Partial<AgentJob> = {}): AgentJob {
    return {
      jobSubmissionId: randomUUID(),
      projectName: 'main',
      runName: 'local-run',
      jobName: 'local-run-0-0',
      commands,
      shell: null,
      env: {},
      workingDir: null,
      maxDurationSeconds: null,
      ...extra,
    };
  }

  async function drain(
    target: InstanceAgent,
    id: string,
    cursor = 0,
    timeoutMillis = 25_000,
  ): Promise<{ jobLogs: LogEvent[]; runnerLogs: LogEvent[]; last: AgentPull; pulls: number }> {
    const jobLogs: LogEvent[] = [];
    const runnerLogs: LogEvent[] = [];
    const deadline = Date.now() + timeoutMillis;
    let pulls = 0;

    while (Date.now() < deadline) {
      const last = await target.pull(id, cursor);
      pulls += 1;
      jobLogs.push(...last.jobLogs);
      runnerLogs.push(...last.runnerLogs);
      cursor = last.cursor;

      if (!last.hasMore && last.state !== null && last.state.status !== 'running') {
        return { jobLogs, runnerLogs, last, pulls };
      }

      if (!last.hasMore) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }

    throw new Error('job did not finish');
  }

  it('describes the instance as this machine at 127.0.0.1, not dockerized', () => {
    expect(data).toMatchObject({
      backend: 'local',
      hostname: '127.0.0.1',
      dockerized: false,
      region: 'local',
      price: 0,
    });
    expect(data.instance_id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('runs the job in its own directory under <serverDir>/local/jobs as its own process group',
    async () => {
      const spec = job(['pwd', 'ps -o pgid= -p $$ | tr -d " "', 'echo $$']);
      await agent.submit(spec);

      const { jobLogs, last } = await drain(agent, spec.jobSubmissionId);
      const [cwd, pgid, pid] = jobLogs.map((event) => event.message.trim());

      expect(last.state).toEqual({
        status: 'done', exitStatus: 0, terminationReason: 'done_by_runner', message: null,
      });
      expect(cwd).toBe(join(serverDir, 'local', 'jobs', spec.jobSubmissionId, 'work'));
      expect(pgid).toBe(pid);
      expect((await stat(cwd)).isDirectory()).toBe(true);
    });

  it('keeps the server secrets out of the job env', async () => {
    process.env.DSTACK_SERVER_ADMIN_TOKEN = 'not-for-jobs';
    const spec = job(['echo "token=${DSTACK_SERVER_ADMIN_TOKEN:-none} path=${PATH:+set}"']);

    try {
      await agent.submit(spec);
    } finally {
      delete process.env.DSTACK_SERVER_ADMIN_TOKEN;
    }

    const { jobLogs } = await drain(agent, spec.jobSubmissionId);
    expect(jobLogs.map((event) => event.message)).toEqual(['token=none path=set\n']);
  });

  it('fails a job whose shell cannot start, saying why in the state and the runner log',
    async () => {
      const spec = job(['echo never'], { shell: '/nonexistent/shell' });
      await agent.submit(spec);

      const { jobLogs, runnerLogs, last } = await drain(agent, spec.jobSubmissionId);

      expect(last.state?.status).toBe('failed');
      expect(last.state?.terminationReason).toBe('executor_error');
      expect(last.state?.message).toContain('/nonexistent/shell');
      expect(last.state?.message).toContain('ENOENT');
      expect(jobLogs).toEqual([]);
      expect(runnerLogs.map((event) => event.message).join('')).toContain('/nonexistent/shell');
    });

  it('fails a job whose working directory does not exist', async () => {
    const spec = job(['echo never'], { workingDir: '/nonexistent/dir' });
    await agent.submit(spec);

    const { last } = await drain(agent, spec.jobSubmissionId);

    expect(last.state?.status).toBe('failed');
    expect(last.state?.message).toContain('working directory /nonexistent/dir does not exist');
  });

  it('ends a job at max_duration as terminated, max_duration_exceeded', async () => {
    const spec = job(['echo start', 'sleep 30', 'echo not-reached'], { maxDurationSeconds: 1 });
    const started = Date.now();
    await agent.submit(spec);

    const { jobLogs, last } = await drain(agent, spec.jobSubmissionId);

    expect(last.state?.status).toBe('terminated');
    expect(last.state?.terminationReason).toBe('max_duration_exceeded');
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(jobLogs.map((event) => event.message)).toEqual(['start\n']);
  });

  it('lets a job with a max_duration above 24.8 days (30d) run to its end', async () => {
    const spec = job(['echo start', 'sleep 1', 'echo end'], { maxDurationSeconds: 30 * 86400 });
    await agent.submit(spec);

    const { jobLogs, runnerLogs, last } = await drain(agent, spec.jobSubmissionId);

    expect(last.state).toEqual({
      status: 'done', exitStatus: 0, terminationReason: 'done_by_runner', message: null,
    });
    expect(jobLogs.map((event) => event.message)).toEqual(['start\n', 'end\n']);
    expect(runnerLogs.map((event) => event.message).join('')).not.toContain('max_duration');
  });

  it('runs a single command longer than the kernel takes as one argument (128 KiB)', async () => {
    const long = 'x'.repeat(300_000);
    const spec = job([`echo ${long} | wc -c`, `printf '%s\\n' "$0"`]);
    await agent.submit(spec);

    const { jobLogs, last } = await drain(agent, spec.jobSubmissionId);

    expect(last.state).toEqual({
      status: 'done', exitStatus: 0, terminationReason: 'done_by_runner', message: null,
    });
    expect(jobLogs.map((event) => event.message.trim())).toEqual([
      '300001',
      join(serverDir, 'local', 'jobs', spec.jobSubmissionId, 'job.sh'),
    ]);
  });

  it('ends a job on a command whose status is non-zero, not on a statement inside one',
    async () => {
      const spec = job(['ls /nonexistent 2>/dev/null; echo inside', 'echo next', 'false',
        'echo never']);
      await agent.submit(spec);

      const result = await drain(agent, spec.jobSubmissionId);

      expect(result.last.state).toMatchObject({ status: 'failed', exitStatus: 1 });
      expect(result.jobLogs.map((event) => event.message).join('')).toBe('inside\nnext\n');
    });

  it('keeps env, working dir and stops on the first failing command (no pipefail)',
    async () => {
      const spec = job(['echo one', 'echo err >&2; (exit 3)', 'echo never'], {
        env: { GREETING: 'hello from env' },
      });
      const piped = job(['echo "$GREETING" in "$(pwd)"', 'false | true', 'echo piped-on'], {
        env: { GREETING: 'hello from env' },
        workingDir: 'sub',
      });
      await agent.submit(spec);
      await agent.submit(piped);

      const failed = await drain(agent, spec.jobSubmissionId);
      const passed = await drain(agent, piped.jobSubmissionId);

      expect(failed.last.state).toEqual({
        status: 'failed',
        exitStatus: 3,
        terminationReason: 'container_exited_with_error',
        message: 'the job exited with status 3',
      });
      // Two pipes: their relative order is up to the scheduler.
      expect(failed.jobLogs.map((event) => `${event.logSource}:${event.message}`).sort())
        .toEqual(['stderr:err\n', 'stdout:one\n']);
      expect(passed.last.state?.status).toBe('done');
      const workDir = join(serverDir, 'local', 'jobs', piped.jobSubmissionId, 'work', 'sub');
      expect(passed.jobLogs.map((event) => event.message)).toEqual([
        `hello from env in ${workDir}\n`,
        'piped-on\n',
      ]);
    });

  it('reports a stopped job as terminated with the signal exit status', async () => {
    const spec = job(['echo up', 'sleep 30']);
    await agent.submit(spec);
    await untilMessage(agent, spec.jobSubmissionId, 'up\n');

    await agent.stop(spec.jobSubmissionId, { force: false });
    const { last } = await drain(agent, spec.jobSubmissionId);

    expect(last.state).toMatchObject({
      status: 'terminated', exitStatus: 143, terminationReason: 'terminated_by_user',
    });
  });

  it('stops a job asked to stop before its runner started it', async () => {
    const spec = job(['echo should-not-run', 'sleep 30']);
    await agent.submit(spec);
    await agent.stop(spec.jobSubmissionId, { force: false });

    const started = Date.now();
    const { last } = await drain(agent, spec.jobSubmissionId);

    expect(last.state).toMatchObject({
      status: 'terminated', terminationReason: 'terminated_by_user',
    });
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('ends the jobs of an instance when the instance is terminated', async () => {
    const requirements = contractRequirements(1);
    const [offer] = await provider.getOffers({ ...settings, requirements });
    const other = await provider.createInstance({
      ...settings, offer, instanceName: 'local-1', instanceId: randomUUID(),
    });
    const otherAgent = provider.agent(other);
    const doomed = job(['echo doomed', 'sleep 30']);
    const survivor = job(['echo survivor', 'sleep 2', 'echo still here']);
    await otherAgent.submit(doomed);
    await agent.submit(survivor);
    await untilMessage(otherAgent, doomed.jobSubmissionId, 'doomed\n');
    await untilMessage(agent, survivor.jobSubmissionId, 'survivor\n');

    await provider.terminateInstance({ ...settings, provisioningData: other });

    expect((await drain(otherAgent, doomed.jobSubmissionId)).last.state?.status)
      .toBe('terminated');
    const kept = await drain(agent, survivor.jobSubmissionId);
    expect(kept.last.state?.status).toBe('done');
    expect(kept.jobLogs.map((event) => event.message)).toContain('still here\n');
  });

  it('captures long output whole and in order: bursts, long lines, no newline, bad UTF-8',
    async () => {
      const spec = job([
        "python3 -c \"import sys; [print('row', i, 'x' * (i % 300)) for i in range(50000)]\"",
        "printf 'no newline at end'",
        "printf '\\xff\\xfe invalid utf-8 bytes\\n'",
        "python3 -c \"print('wide: ' + 'é' * 40000)\"",
      ]);
      await agent.submit(spec);

      const { jobLogs, pulls } = await drain(agent, spec.jobSubmissionId, 0, 60_000);
      const rows = Array.from(
        { length: 50000 },
        (_, i) => `row ${i} ${'x'.repeat(i % 300)}\n`,
      ).join('');
      const expected = `${rows}no newline at end\uFFFD\uFFFD invalid utf-8 bytes\n` +
        `wide: ${'é'.repeat(40000)}\n`;

      expect(jobLogs.map((event) => event.message).join('')).toBe(expected);
      expect(jobLogs.at(-1)?.message.endsWith(`wide: ${'é'.repeat(40000)}\n`)).toBe(true);
      expect(pulls).toBeGreaterThanOrEqual(Math.ceil(jobLogs.length / 1000));

      for (let index = 1; index < jobLogs.length; index += 1) {
        expect(jobLogs[index].timestamp).toBeGreaterThan(jobLogs[index - 1].timestamp);
      }

      // A burst keeps its stamps close to the clock instead of one millisecond per line.
      const { finishedAt } = JSON.parse(await readFile(
        join(serverDir, 'local', 'jobs', spec.jobSubmissionId, 'state.json'),
        'utf8',
      )) as { finishedAt: number };
      expect(jobLogs.at(-1)!.timestamp - finishedAt).toBeLessThan(maxLeadMillis);
    }, 90_000);

  it('keeps both streams whole and close to the clock when they alternate quickly', async () => {
    const spec = job([
      'python3 -c "import sys; [print(i, file=(sys.stderr if i % 2 else sys.stdout), ' +
        'flush=True) for i in range(40000)]"',
    ]);
    await agent.submit(spec);

    const { jobLogs } = await drain(agent, spec.jobSubmissionId, 0, 60_000);
    const textOf = (source: string): string => jobLogs
      .filter((event) => event.logSource === source)
      .map((event) => event.message)
      .join('');
    const numbers = (odd: number): string => Array.from({ length: 20000 }, (_, i) => 2 * i + odd)
      .map((value) => `${value}\n`)
      .join('');

    expect(textOf('stdout')).toBe(numbers(0));
    expect(textOf('stderr')).toBe(numbers(1));

    for (let index = 1; index < jobLogs.length; index += 1) {
      expect(jobLogs[index].timestamp).toBeGreaterThan(jobLogs[index - 1].timestamp);
    }

    const { finishedAt } = JSON.parse(await readFile(
      join(serverDir, 'local', 'jobs', spec.jobSubmissionId, 'state.json'),
      'utf8',
    )) as { finishedAt: number };
    expect(jobLogs.at(-1)!.timestamp - finishedAt).toBeLessThan(maxLeadMillis);
  }, 90_000);

  it('hands out a partial line after a short delay while the job still runs', async () => {
    const spec = job(["printf 'waiting> '", 'sleep 2', 'echo done']);
    await agent.submit(spec);

    const seen = await untilMessage(agent, spec.jobSubmissionId, 'waiting> ');
    const state = await agent.pull(spec.jobSubmissionId, seen.cursor);

    expect(state.state?.status).toBe('running');
    const rest = await drain(agent, spec.jobSubmissionId, seen.cursor);
    expect(rest.jobLogs.map((event) => event.message)).toEqual(['done\n']);
  });

  it('bounds a pull to the page size, then continues from any cursor', async () => {
    // Paced output: a burst would be joined into fewer, larger events.
    const spec = job([
      'python3 -c "import time; [(print(i, flush=True), time.sleep(0.001)) ' +
        'for i in range(1, 2501)]"',
    ]);
    await agent.submit(spec);
    const all = await drain(agent, spec.jobSubmissionId);
    expect(all.jobLogs.map((event) => event.message).join('')).toBe(
      Array.from({ length: 2500 }, (_, i) => `${i + 1}\n`).join(''),
    );
    expect(all.jobLogs.length).toBeGreaterThan(1800);

    const first = await agent.pull(spec.jobSubmissionId, 0);
    expect(first.jobLogs.length + first.runnerLogs.length).toBe(1000);
    expect(first.hasMore).toBe(true);
    expect(first.state?.status).toBe('running');

    const middle = all.jobLogs[1700];
    const fresh = provider.agent(data);
    const rest = await drain(fresh, spec.jobSubmissionId, middle.timestamp);
    expect(rest.jobLogs).toEqual(all.jobLogs.slice(1701));
    expect(rest.last.state?.status).toBe('done');
  });

  it('keeps a job running across a new provider and agent, nothing lost or repeated', async () => {
    const spec = job(['for i in 1 2 3 4; do echo "tick $i"; sleep 0.4; done']);
    await agent.submit(spec);
    const seen = await untilMessage(agent, spec.jobSubmissionId, 'tick 1\n');

    const restarted = createLocalBackendProvider({ serverDir, nvidiaSmiPath: '/nonexistent' });
    const rest = await drain(restarted.agent(data), spec.jobSubmissionId, seen.cursor);

    expect([...seen.messages, ...rest.jobLogs.map((event) => event.message)]).toEqual(
      ['tick 1\n', 'tick 2\n', 'tick 3\n', 'tick 4\n'],
    );
    expect(rest.last.state?.status).toBe('done');
  });

  it('writes the runner script to disk under the server directory', async () => {
    const runner = (await import('node:fs/promises')).readdir(join(serverDir, 'local'));
    const names = (await runner).filter((name) => name.startsWith('runner-'));
    expect(names).toHaveLength(1);
    const source = await readFile(join(serverDir, 'local', names[0]), 'utf8');
    expect(source).toContain("require('node:child_process')");
  });

  it('fails a job whose runner died, instead of leaving it running forever', async () => {
    const spec = job(['echo alive', 'sleep 30']);
    await agent.submit(spec);
    await untilMessage(agent, spec.jobSubmissionId, 'alive\n');
    const state = JSON.parse(await readFile(
      join(serverDir, 'local', 'jobs', spec.jobSubmissionId, 'state.json'),
      'utf8',
    )) as { runnerPid: number; pid: number };

    process.kill(state.runnerPid, 'SIGKILL');
    await new Promise((resolve) => setTimeout(resolve, 200));
    const { last } = await drain(agent, spec.jobSubmissionId);

    expect(last.state?.status).toBe('failed');
    expect(last.state?.message).toContain('runner exited unexpectedly');
    expect(await groupGone(state.pid)).toBe(true);
  });

  async function groupGone(pgid: number): Promise<boolean> {
    for (let attempt = 0; attempt < 50; attempt += 1) {
      try {
        process.kill(-pgid, 0);
      } catch {
        return true;
      }

      await new Promise((resolve) => setTimeout(resolve, 100));
    }

    return false;
  }

  async function untilMessage(
    target: InstanceAgent,
    id: string,
    message: string,
  ): Promise<{ cursor: number; messages: string[] }> {
    const messages: string[] = [];
    let cursor = 0;
    const deadline = Date.now() + 20_000;

    while (Date.now() < deadline) {
      const page = await target.pull(id, cursor);
      cursor = page.cursor;
      messages.push(...page.jobLogs.map((event) => event.message));

      if (messages.includes(message)) {
        return { cursor, messages };
      }

      await new Promise((resolve) => setTimeout(resolve, 50));
    }

    throw new Error(`no ${message} in time`);
  }
});

describe('local backend repos', () => {
  let serverDir: string;
  let provider: BackendProvider;
  let data: JobProvisioningData;
  let agent: InstanceAgent;

  beforeAll(async () => {
    serverDir = await mkdtemp(join(tmpdir(), 'local-repos-'));
    provider = createLocalBackendProvider({ serverDir, nvidiaSmiPath: '/nonexistent' });
    const requirements = contractRequirements(1);
    const [offer] = await provider.getOffers({ ...settings, requirements });
    data = await provider.createInstance({
      ...settings, offer, instanceName: 'local-0', instanceId: randomUUID(),
    });
    agent = provider.agent(data);
  });

  afterAll(async () => {
    await provider.terminateInstance({ ...settings, provisioningData: data });
    await rm(serverDir, { recursive: true, force: true });
  });

  function repoJob(commands: string[], repo: AgentRepo, extra: Partial<AgentJob> = {}): AgentJob {
    return {
      jobSubmissionId: randomUUID(),
      projectName: 'main',
      runName: 'repo-run',
      jobName: 'repo-run-0-0',
      commands,
      shell: null,
      env: {},
      workingDir: null,
      maxDurationSeconds: null,
      repo,
      ...extra,
    };
  }

  function gitRepo(cloneUrl: string, extra: Partial<AgentGitRepo> = {}): AgentGitRepo {
    return {
      kind: 'git', path: '.', cloneUrl, branch: null, hash: null, diff: new Uint8Array(),
      privateKey: null, oauthToken: null, configName: null, configEmail: null,
      singleBranch: false, ...extra,
    };
  }

  async function finished(id: string): Promise<{ state: AgentPull['state']; text: string }> {
    const deadline = Date.now() + 25_000;
    let cursor = 0;
    let text = '';

    while (Date.now() < deadline) {
      const page = await agent.pull(id, cursor);
      cursor = page.cursor;
      text += page.jobLogs.map((event) => event.message).join('');

      if (!page.hasMore && page.state !== null && page.state.status !== 'running') {
        return { state: page.state, text };
      }

      await new Promise((resolve) => setTimeout(resolve, 50));
    }

    throw new Error('job did not finish');
  }

  const jobDir = (id: string) => join(serverDir, 'local', 'jobs', id);

  it('keeps in-tree links, long names and modes of the archive, under repos[].path',
    async () => {
      const long = `${'deep/'.repeat(25)}leaf.txt`;
      const archive = createTarArchive([
        { name: 'bin/tool.sh', content: 'echo tool ran\n', mode: 0o755 },
        { name: 'docs/readme.txt', content: 'readme\n' },
        { name: 'readme-link', type: 'symlink', linkName: 'docs/readme.txt' },
        { name: 'readme-copy', type: 'hardlink', linkName: 'docs/readme.txt' },
        { name: long, content: 'long name\n' },
      ]);
      const spec = repoJob(
        ['./src/bin/tool.sh', 'cat src/readme-link src/readme-copy', `cat "src/${long}"`,
          'echo "$DSTACK_REPO_DIR"'],
        { kind: 'archive', path: 'src', archive },
      );
      await agent.submit(spec);

      const { state, text } = await finished(spec.jobSubmissionId);

      expect(state).toMatchObject({ status: 'done', exitStatus: 0 });
      expect(text).toBe(`tool ran\nreadme\nreadme\nlong name\n${join(jobDir(spec.jobSubmissionId),
        'work', 'src')}\n`);
    });

  it('removes the clone credentials and the blob before the commands start', async () => {
    const fixtureDir = await mkdtemp(join(tmpdir(), 'local-repos-git-'));

    try {
      const fixture = await createGitRepoFixture(fixtureDir, { 'a.txt': 'a\n' }, {});
      // The script names the token in two halves, so only a leaked copy can match.
      // The runner may be replacing state.json right then: its temporary file is no secret.
      const spec = repoJob(['ls -A .. | grep -v "\\.tmp$"',
        'grep -rl "local-secret-$HALF" .. || echo clean'],
        gitRepo(fixture.cloneUrl, { oauthToken: 'local-secret-token', privateKey: 'KEY' }),
        { env: { HALF: 'token' } });
      await agent.submit(spec);

      const { state, text } = await finished(spec.jobSubmissionId);
      const left = text.split('\n').filter((line) => line !== '' && line !== 'clean');

      expect(state).toMatchObject({ status: 'done', exitStatus: 0 });
      expect(text).toMatch(/\nclean\n$/);
      expect(left.sort()).toEqual(
        ['events.jsonl', 'job.json', 'job.sh', 'runner-output.log', 'runner.pid', 'state.json',
          'work'],
      );
    } finally {
      await rm(fixtureDir, { recursive: true, force: true });
    }
  });

  it('stops a job while its clone waits on a silent server', async () => {
    const requests: string[] = [];
    const silent = createHttpServer((request) => {
      requests.push(request.url ?? '');
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as AddressInfo;

    try {
      const spec = repoJob(['echo never'], gitRepo(`http://127.0.0.1:${port}/repo.git`));
      await agent.submit(spec);
      const deadline = Date.now() + 20_000;

      while (requests.length === 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }

      expect(requests[0]).toContain('/repo.git/info/refs');
      await agent.stop(spec.jobSubmissionId, { force: false });
      const { state, text } = await finished(spec.jobSubmissionId);

      expect(state).toMatchObject({
        status: 'terminated',
        terminationReason: 'terminated_by_user',
        message: 'the job was stopped before it started',
      });
      expect(text).toBe('');
    } finally {
      silent.closeAllConnections();
      silent.close();
    }
  });

  it('fails the job on a diff that does not apply, with git saying why', async () => {
    const fixtureDir = await mkdtemp(join(tmpdir(), 'local-repos-git-'));

    try {
      const fixture = await createGitRepoFixture(fixtureDir, { 'a.txt': 'a\n' }, {});
      const diff = Buffer.from('diff --git a/missing.txt b/missing.txt\n--- a/missing.txt\n'
        + '+++ b/missing.txt\n@@ -1 +1 @@\n-old\n+new\n');
      const spec = repoJob(['echo never'], gitRepo(fixture.cloneUrl, { diff }));
      await agent.submit(spec);

      const { state } = await finished(spec.jobSubmissionId);

      expect(state).toMatchObject({
        status: 'failed',
        terminationReason: 'container_exited_with_error',
      });
      expect(state?.message).toMatch(/^Failed to set up the repo \(git apply exited .*missing/);
    } finally {
      await rm(fixtureDir, { recursive: true, force: true });
    }
  });

  it('fails the job on a blob too short to be a tar archive, rather than running without code',
    async () => {
      const archive = Buffer.from('print("a stray script, not an archive")\n');
      const spec = repoJob(['echo never'], { kind: 'archive', path: '.', archive });
      await agent.submit(spec);

      const { state, text } = await finished(spec.jobSubmissionId);

      expect(state).toMatchObject({
        status: 'failed',
        terminationReason: 'container_exited_with_error',
        message: 'Failed to set up the repo (not a tar archive (40 bytes))',
      });
      expect(text).toBe('');
    });
});
