import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resourcesMismatch } from '../backends/resources-match.js';
import type {
  InstanceOffer,
  JobProvisioningData,
  Requirements,
} from '../domain/resources.js';
import type {
  AgentJob,
  AgentPull,
  BackendProvider,
  BackendSettings,
  InstanceAgent,
} from '../ports/backend-provider.js';
import type { LogEvent } from '../ports/log-store.js';
import {
  createGitRepoFixture,
  createTarArchive,
  gitAvailable,
  startGitHttpServer,
} from './repo-fixtures.js';

/** How the suite drives a provider; every field has a default that suits a small machine. */
export interface BackendProviderContractOptions {
  /** The backend as a project configures it. */
  settings?: BackendSettings;
  /** Requirements at least one offer meets. */
  requirements?: Requirements;
  /** Requirements no offer meets. */
  unsatisfiable?: Requirements;
  /** How long a short job may take from submit to its final state. */
  jobTimeoutMillis?: number;
  /** Called after the suite, e.g. to remove a temporary directory. */
  cleanup?: () => Promise<void>;
  /**
   * The agent checks out `AgentJob.repo` (archives, and git repos when `git` runs here);
   * off by default, for backends that leave repos to a later version.
   */
  repos?: boolean;
  /** The agent samples running jobs (`InstanceAgent.metrics`); off by default. */
  metrics?: boolean;
}

/** Requirements with every bound open but the CPU count. */
export function contractRequirements(minCpus: number): Requirements {
  return {
    resources: {
      cpu: { arch: null, count: { min: minCpus, max: null } },
      memory: { min: null, max: null },
      shm_size: null,
      gpu: {
        vendor: null,
        name: null,
        count: { min: 0, max: null },
        memory: null,
        total_memory: null,
        compute_capability: null,
      },
      disk: { size: { min: null, max: null } },
    },
    max_price: null,
    spot: null,
    reservation: null,
    multinode: null,
  };
}

const availabilities = [
  'unknown', 'available', 'not_available', 'no_quota', 'no_balance', 'idle', 'busy',
];

/**
 * The BackendProvider contract, for built-in backends and plugins alike: offers, instances,
 * and an agent that runs shell commands, keeps their output and state, and can be replaced
 * by a new agent object over the same instance without losing or repeating events.
 */
export function runBackendProviderContract(
  name: string,
  makeProvider: () => BackendProvider | Promise<BackendProvider>,
  options: BackendProviderContractOptions = {},
): void {
  const settings: BackendSettings = options.settings ??
    { projectName: 'main', config: {}, creds: null };
  const requirements = options.requirements ?? contractRequirements(1);
  const unsatisfiable = options.unsatisfiable ?? contractRequirements(1_000_000);
  const jobTimeoutMillis = options.jobTimeoutMillis ?? 20_000;

  describe(`BackendProvider contract: ${name}`, () => {
    let provider: BackendProvider;
    let offer: InstanceOffer;
    let data: JobProvisioningData;
    let agent: InstanceAgent;
    const submitted: string[] = [];

    beforeAll(async () => {
      provider = await makeProvider();
      const offers = await provider.getOffers({ ...settings, requirements });
      offer = offers[0];
      data = await provider.createInstance({
        ...settings,
        offer,
        instanceName: `contract-${randomUUID().slice(0, 8)}`,
        instanceId: randomUUID(),
      });
      agent = provider.agent(data);
    });

    afterAll(async () => {
      for (const id of submitted) {
        await agent?.stop(id, { force: true }).catch(() => undefined);
        await agent?.remove(id).catch(() => undefined);
      }

      await agent?.close?.();

      if (data !== undefined) {
        await provider.terminateInstance({ ...settings, provisioningData: data });
      }

      await options.cleanup?.();
    });

    function job(commands: string[], extra: Partial<AgentJob> = {}): AgentJob {
      const id = randomUUID();
      submitted.push(id);
      return {
        jobSubmissionId: id,
        projectName: settings.projectName,
        runName: 'contract-run',
        jobName: 'contract-run-0-0',
        commands,
        shell: null,
        env: {},
        workingDir: null,
        maxDurationSeconds: null,
        ...extra,
      };
    }

    it('names its type and capabilities', () => {
      expect(provider.type).toMatch(/^[a-z][a-z0-9-]*$/);
      expect(typeof provider.capabilities.images).toBe('boolean');
      expect(typeof provider.capabilities.multinode).toBe('boolean');
    });

    it('offers instances that meet the requirements, cheapest first', async () => {
      const offers = await provider.getOffers({ ...settings, requirements });

      expect(offers.length).toBeGreaterThan(0);

      for (const item of offers) {
        expect(item.backend).toBe(provider.type);
        expect(typeof item.instance.name).toBe('string');
        expect(item.instance.resources.cpus).toBeGreaterThan(0);
        expect(item.instance.resources.memory_mib).toBeGreaterThan(0);
        expect(Array.isArray(item.instance.resources.gpus)).toBe(true);
        expect(typeof item.instance.resources.disk.size_mib).toBe('number');
        expect(typeof item.region).toBe('string');
        expect(item.price).toBeGreaterThanOrEqual(0);
        expect(availabilities).toContain(item.availability);
        expect(['shim', 'runner']).toContain(item.instance_runtime);
        expect(resourcesMismatch(item.instance.resources, requirements)).toBeNull();
      }

      const prices = offers.map((item) => item.price);
      expect(prices).toEqual([...prices].sort((a, b) => a - b));
    });

    it('gives no offer for requirements nothing meets', async () => {
      expect(await provider.getOffers({ ...settings, requirements: unsatisfiable })).toEqual([]);
    });

    it('creates an instance for an offer', () => {
      expect(data.backend).toBe(provider.type);
      expect(data.instance_type).toEqual(offer.instance);
      expect(typeof data.region).toBe('string');
      expect(typeof data.price).toBe('number');
      expect(typeof data.username).toBe('string');
      expect(typeof data.dockerized).toBe('boolean');
    });

    it('ends an instance, and ending it again resolves', async () => {
      const extra = await provider.createInstance({
        ...settings,
        offer,
        instanceName: 'contract-extra',
        instanceId: randomUUID(),
      });

      await provider.terminateInstance({ ...settings, provisioningData: extra });
      await provider.terminateInstance({ ...settings, provisioningData: extra });
    });

    it('passes its healthcheck', async () => {
      await agent.healthcheck();
    });

    it('runs commands in one shell with the env, keeping stdout and stderr', async () => {
      const spec = job(
        ['export PART=two', 'echo "contract $CONTRACT_VAR $PART"', 'echo "to stderr" >&2'],
        { env: { CONTRACT_VAR: 'one' } },
      );
      await agent.submit(spec);

      const result = await untilFinished(agent, spec.jobSubmissionId, jobTimeoutMillis);

      expect(result.state).toMatchObject({ status: 'done', exitStatus: 0 });
      expect(result.jobLogs.map((event) => event.message).join('')).toBe(
        'contract one two\nto stderr\n',
      );
      expect(result.jobLogs.find((event) => event.message === 'to stderr\n')?.logSource)
        .toBe('stderr');
      expectIncreasing(result.jobLogs);
    });

    it('ends a job at its first failing command with the exit status', async () => {
      const spec = job(['echo before', 'sh -c "exit 3"', 'echo not-reached']);
      await agent.submit(spec);

      const result = await untilFinished(agent, spec.jobSubmissionId, jobTimeoutMillis);

      expect(result.state).toMatchObject({ status: 'failed', exitStatus: 3 });
      expect(result.jobLogs.map((event) => event.message).join('')).toBe('before\n');
    });

    it('ends a job at its max_duration as terminated, max_duration_exceeded', async () => {
      const spec = job(['echo begin', 'sleep 60'], { maxDurationSeconds: 1 });
      await agent.submit(spec);

      const result = await untilFinished(agent, spec.jobSubmissionId, jobTimeoutMillis);

      expect(result.state).toMatchObject({
        status: 'terminated',
        terminationReason: 'max_duration_exceeded',
      });
    });

    it('fails a job whose shell cannot start and says why', async () => {
      const spec = job(['echo never'], { shell: '/nonexistent/contract-shell' });
      await agent.submit(spec);

      const result = await untilFinished(agent, spec.jobSubmissionId, jobTimeoutMillis);

      expect(result.state?.status).toBe('failed');
      expect(result.state?.message).toContain('/nonexistent/contract-shell');
      expect(result.jobLogs).toEqual([]);
    });

    it('ignores a second submit of the same submission', async () => {
      const spec = job(['echo once']);
      await agent.submit(spec);
      await agent.submit(spec);

      const result = await untilFinished(agent, spec.jobSubmissionId, jobTimeoutMillis);

      expect(result.jobLogs.map((event) => event.message)).toEqual(['once\n']);
    });

    it('stops a running job', async () => {
      const spec = job(['echo started', 'sleep 60']);
      await agent.submit(spec);
      await untilLogged(agent, spec.jobSubmissionId, 'started\n', jobTimeoutMillis);

      await agent.stop(spec.jobSubmissionId, { force: false });
      const result = await untilFinished(agent, spec.jobSubmissionId, jobTimeoutMillis);

      expect(['terminated', 'failed']).toContain(result.state?.status);
    });

    it('kills a job that ignores SIGTERM when forced', async () => {
      const spec = job(['trap "" TERM', 'echo trapped', 'sleep 60']);
      await agent.submit(spec);
      await untilLogged(agent, spec.jobSubmissionId, 'trapped\n', jobTimeoutMillis);

      await agent.stop(spec.jobSubmissionId, { force: true });
      const result = await untilFinished(agent, spec.jobSubmissionId, jobTimeoutMillis);

      expect(['terminated', 'failed']).toContain(result.state?.status);
    });

    it('pages events from a cursor with nothing lost or repeated', async () => {
      const lines = 2500;
      const spec = job([`i=0; while [ $i -lt ${lines} ]; do echo "line $i"; i=$((i+1)); done`]);
      await agent.submit(spec);

      const result = await untilFinished(agent, spec.jobSubmissionId, jobTimeoutMillis);
      const expected = Array.from({ length: lines }, (_, index) => `line ${index}\n`);

      expect(result.jobLogs.map((event) => event.message).join('')).toBe(expected.join(''));
      expect(result.pulls).toBeGreaterThan(1);
      expectIncreasing(result.jobLogs);
    });

    it('lets a new agent object carry on from the cursor of the old one', async () => {
      const spec = job(['echo first', 'sleep 1', 'echo second', 'echo third']);
      await agent.submit(spec);
      const first = await untilLogged(agent, spec.jobSubmissionId, 'first\n', jobTimeoutMillis);

      await agent.close?.();
      const successor = provider.agent(data);
      const rest = await untilFinished(successor, spec.jobSubmissionId, jobTimeoutMillis,
        first.cursor);
      agent = successor;

      const messages = [...first.jobLogs, ...rest.jobLogs].map((event) => event.message);
      expect(messages).toEqual(['first\n', 'second\n', 'third\n']);
      expect(rest.state).toMatchObject({ status: 'done', exitStatus: 0 });
    });

    describe.runIf(options.metrics === true)('metrics', () => {
      it('samples a busy job: CPU time grows within one CPU, memory is used', async () => {
        const spec = job(['while :; do :; done'], { shell: 'sh' });
        await agent.submit(spec);
        const id = spec.jobSubmissionId;
        const sample = () => agent.metrics!(id);
        const first = await untilValue(sample, jobTimeoutMillis);

        // A second of busy looping at least, and a CPU time that has moved past the first.
        const last = await untilValue(async () => {
          const next = await sample();
          const waited = next !== null && next.timestampMicro - first.timestampMicro >= 1e6;
          return waited && next.cpuUsageMicro > first.cpuUsageMicro ? next : null;
        }, jobTimeoutMillis);

        // One process cannot use more than one CPU: microseconds, not ticks. The slack covers
        // the time between taking a timestamp and reading the counters on a busy machine.
        expect(last.cpuUsageMicro - first.cpuUsageMicro)
          .toBeLessThanOrEqual(2 * (last.timestampMicro - first.timestampMicro) + 500_000);
        expect(last.memoryUsageBytes).toBeGreaterThan(0);
        expect(last.memoryWorkingSetBytes).toBeGreaterThan(0);
        expect(last.memoryWorkingSetBytes).toBeLessThanOrEqual(last.memoryUsageBytes);
        expect(Math.abs(last.timestampMicro - Date.now() * 1000)).toBeLessThan(60_000_000);

        await agent.stop(id, { force: true });
        await untilValue(async () => ((await sample()) === null ? true : null), jobTimeoutMillis);
      });
    });

    describe.runIf(options.repos === true)('repos', () => {
      let fixtureDir: string;

      beforeAll(async () => {
        fixtureDir = await mkdtemp(join(tmpdir(), 'contract-repo-'));
      });

      afterAll(async () => {
        await rm(fixtureDir, { recursive: true, force: true });
      });

      it('extracts an archive repo into the job directory, the default working dir',
        async () => {
          const archive = createTarArchive([
            { name: 'train.py', content: 'print("train")\n' },
            { name: 'src/', type: 'dir' },
            { name: 'src/data/config.yml', content: 'lr: 0.1\n' },
            { name: 'run.sh', content: 'echo run\n', mode: 0o755 },
          ]);
          const spec = job(
            ['cat train.py src/data/config.yml', './run.sh',
              'test "$DSTACK_REPO_DIR" = "$(pwd)" && echo "repo dir is the working dir"'],
            { repo: { kind: 'archive', path: '.', archive } },
          );
          await agent.submit(spec);

          const result = await untilFinished(agent, spec.jobSubmissionId, jobTimeoutMillis);

          expect(result.state).toMatchObject({ status: 'done', exitStatus: 0 });
          expect(result.jobLogs.map((event) => event.message).join('')).toBe(
            'print("train")\nlr: 0.1\nrun\nrepo dir is the working dir\n',
          );
        });

      it('starts a relative working_dir inside the repo', async () => {
        const archive = createTarArchive([{ name: 'app/main.txt', content: 'main\n' }]);
        const spec = job(['cat main.txt', 'test "$DSTACK_WORKING_DIR" = "$(pwd)" && echo ok'], {
          workingDir: 'app',
          repo: { kind: 'archive', path: '.', archive },
        });
        await agent.submit(spec);

        const result = await untilFinished(agent, spec.jobSubmissionId, jobTimeoutMillis);

        expect(result.state).toMatchObject({ status: 'done', exitStatus: 0 });
        expect(result.jobLogs.map((event) => event.message).join('')).toBe('main\nok\n');
      });

      for (const label of ['an absolute', 'a ..'] as const) {
        it(`fails the job on ${label} archive entry, writing nothing outside`, async () => {
          const outside = join(fixtureDir, `contract-escape-${randomUUID()}`);
          const name = label === 'a ..' ? '../contract-escape' : outside;
          const archive = createTarArchive([
            { name: 'ok.txt', content: 'ok\n' },
            { name, content: 'escaped\n' },
          ]);
          const spec = job(['echo never'], { repo: { kind: 'archive', path: '.', archive } });
          await agent.submit(spec);

          const result = await untilFinished(agent, spec.jobSubmissionId, jobTimeoutMillis);

          expect(result.state).toMatchObject({
            status: 'failed',
            terminationReason: 'container_exited_with_error',
          });
          expect(result.state?.message).toMatch(/^Failed to set up the repo \(.*contract-escape/);
          expect(result.jobLogs).toEqual([]);
          expect(existsSync(outside)).toBe(false);
        });
      }

      it('fails the job on an archive that writes through a link it made', async () => {
        const archive = createTarArchive([
          { name: 'up', type: 'symlink', linkName: '..' },
          { name: 'up/contract-through-link.txt', content: 'escaped\n' },
        ]);
        const spec = job(['echo never'], { repo: { kind: 'archive', path: '.', archive } });
        await agent.submit(spec);

        const result = await untilFinished(agent, spec.jobSubmissionId, jobTimeoutMillis);

        expect(result.state?.status).toBe('failed');
        expect(result.state?.message).toContain('Failed to set up the repo');
      });

      const withGit = it.runIf(gitAvailable());

      withGit('clones a git repo, checks out the commit and applies the diff', async () => {
        const fixture = await createGitRepoFixture(join(fixtureDir, 'git'), {
          'train.py': 'print("v1")\n',
          'lib/util.py': 'X = 1\n',
        }, {
          'train.py': 'print("v2 patched")\n',
          'notes/new.txt': 'untracked\n',
        }, { 'train.py': 'print("pushed later")\n' });
        const spec = job(['cat train.py lib/util.py notes/new.txt', 'git rev-parse HEAD',
          'git config user.name'], {
          repo: {
            kind: 'git',
            path: '.',
            cloneUrl: fixture.cloneUrl,
            branch: fixture.branch,
            hash: fixture.hash,
            diff: fixture.diff,
            privateKey: null,
            oauthToken: null,
            configName: 'Contract User',
            configEmail: 'contract@example.com',
            singleBranch: false,
          },
        });
        await agent.submit(spec);

        const result = await untilFinished(agent, spec.jobSubmissionId, jobTimeoutMillis);

        expect(result.state).toMatchObject({ status: 'done', exitStatus: 0 });
        expect(result.jobLogs.map((event) => event.message).join('')).toBe(
          `print("v2 patched")\nX = 1\nuntracked\n${fixture.hash}\nContract User\n`,
        );
      });

      withGit('clones with the oauth token, which neither the logs nor the job see', async () => {
        const fixture = await createGitRepoFixture(join(fixtureDir, 'http'), {
          'private.txt': 'behind a token\n',
        }, {});
        const token = `contract-token-${randomUUID()}`;
        const gitServer = await startGitHttpServer(join(fixtureDir, 'http'), token);

        try {
          const spec = job(['cat private.txt', 'printenv | grep -c "$HALF" || true'], {
            env: { HALF: token.slice(-12) },
            repo: {
              kind: 'git', path: '.', cloneUrl: gitServer.urlOf('origin.git'),
              branch: fixture.branch, hash: fixture.hash, diff: new Uint8Array(),
              privateKey: null, oauthToken: token, configName: null, configEmail: null,
              singleBranch: true,
            },
          });
          await agent.submit(spec);

          const result = await untilFinished(agent, spec.jobSubmissionId, jobTimeoutMillis);
          const logs = [...result.jobLogs, ...result.runnerLogs].map((event) => event.message);

          expect(result.state).toMatchObject({ status: 'done', exitStatus: 0 });
          expect(gitServer.passwords).toContain(token);
          // Only HALF itself matches: the token is in no other variable of the job.
          expect(result.jobLogs.map((event) => event.message).join('')).toBe(
            'behind a token\n1\n',
          );
          expect(logs.join('')).not.toContain(token);
        } finally {
          await gitServer.close();
        }
      });

      withGit('fails the job when the clone fails, saying why', async () => {
        const missing = pathToFileURL(join(fixtureDir, 'missing.git')).href;
        const spec = job(['echo never'], {
          repo: {
            kind: 'git', path: '.', cloneUrl: missing, branch: null, hash: null,
            diff: new Uint8Array(), privateKey: null, oauthToken: 'contract-secret-token',
            configName: null, configEmail: null, singleBranch: false,
          },
        });
        await agent.submit(spec);

        const result = await untilFinished(agent, spec.jobSubmissionId, jobTimeoutMillis);
        const logs = [...result.jobLogs, ...result.runnerLogs].map((event) => event.message);

        expect(result.state).toMatchObject({
          status: 'failed',
          terminationReason: 'container_exited_with_error',
        });
        expect(result.state?.message).toMatch(/^Failed to set up the repo \(.*git clone/);
        expect(`${logs.join('')} ${result.state?.message}`).not.toContain('contract-secret');
      });
    });

    it('knows no job it was not given, and forgets a removed one', async () => {
      const unknown = await agent.pull(randomUUID(), 0);
      expect(unknown.state).toBeNull();
      expect(unknown.jobLogs).toEqual([]);

      const spec = job(['echo bye']);
      await agent.submit(spec);
      await untilFinished(agent, spec.jobSubmissionId, jobTimeoutMillis);
      await agent.remove(spec.jobSubmissionId);

      const removed = await agent.pull(spec.jobSubmissionId, 0);
      expect(removed.state).toBeNull();
      expect(removed.jobLogs).toEqual([]);
    });
  });
}

interface Collected {
  state: AgentPull['state'];
  jobLogs: LogEvent[];
  runnerLogs: LogEvent[];
  cursor: number;
  pulls: number;
}

const pollMillis = 50;

async function collect(
  agent: InstanceAgent,
  id: string,
  timeoutMillis: number,
  cursor: number,
  done: (collected: Collected, last: AgentPull) => boolean,
): Promise<Collected> {
  const collected: Collected = { state: null, jobLogs: [], runnerLogs: [], cursor, pulls: 0 };
  const deadline = Date.now() + timeoutMillis;

  while (Date.now() < deadline) {
    const page = await agent.pull(id, collected.cursor);
    collected.pulls += 1;
    collected.state = page.state;
    collected.jobLogs.push(...page.jobLogs);
    collected.runnerLogs.push(...page.runnerLogs);
    expect(page.cursor).toBeGreaterThanOrEqual(collected.cursor);
    collected.cursor = page.cursor;

    if (done(collected, page)) {
      return collected;
    }

    if (!page.hasMore) {
      await new Promise((resolve) => setTimeout(resolve, pollMillis));
    }
  }

  throw new Error(`job ${id} did not get there within ${timeoutMillis} ms`);
}

/** Calls `read` until it gives a value other than null, or fails after `timeoutMillis`. */
async function untilValue<T>(read: () => Promise<T | null>, timeoutMillis: number): Promise<T> {
  const deadline = Date.now() + timeoutMillis;

  for (;;) {
    const value = await read();

    if (value !== null) {
      return value;
    }

    if (Date.now() > deadline) {
      throw new Error(`no value within ${timeoutMillis} ms`);
    }

    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function untilFinished(
  agent: InstanceAgent,
  id: string,
  timeoutMillis: number,
  cursor = 0,
): Promise<Collected> {
  return collect(agent, id, timeoutMillis, cursor, (collected, page) =>
    !page.hasMore && collected.state !== null && collected.state.status !== 'running');
}

function untilLogged(
  agent: InstanceAgent,
  id: string,
  message: string,
  timeoutMillis: number,
): Promise<Collected> {
  return collect(agent, id, timeoutMillis, 0, (collected) =>
    collected.jobLogs.some((event) => event.message === message));
}

function expectIncreasing(events: LogEvent[]): void {
  for (let index = 1; index < events.length; index += 1) {
    expect(events[index].timestamp).toBeGreaterThan(events[index - 1].timestamp);
  }
}
