import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { access, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { constants } from 'node:fs';
import { isAbsolute, join, resolve, sep } from 'node:path';
import type {
  AgentJob,
  AgentJobState,
  AgentMetricsSample,
  AgentRepo,
  AgentPull,
  InstanceAgent,
} from '../../ports/backend-provider.js';
import type { LogEvent } from '../../ports/log-store.js';
import type { Logger } from '../../ports/logger.js';
import { readEventsAfter } from './events-file.js';
import type { RunnerEvent } from './events-file.js';
import { sampleProcessGroup } from './process-metrics.js';

export interface LocalAgentOptions {
  /** `<serverDir>/local/jobs`: one directory per job submission. */
  jobsDir: string;
  /** The instance the agent's jobs belong to. */
  instanceId: string;
  /** Resolves to the path of the runner script, writing it first when needed. */
  runnerPath: () => Promise<string>;
  logger: Logger;
  /** At most this many events per pull. */
  pageSize: number;
  /** How long a job may go without a runner state before it counts as failed to start. */
  runnerStartMillis?: number;
  /** The `nvidia-smi` asked for the GPU use of jobs (default: the one on PATH). */
  nvidiaSmiPath?: string;
}

/** What the runner keeps in `state.json`. */
interface RunnerState {
  status: 'running' | 'done' | 'failed' | 'terminated';
  runnerPid?: number;
  pid?: number;
  exitStatus?: number | null;
  terminationReason?: string | null;
  message?: string | null;
}

const runningState: AgentJobState = {
  status: 'running',
  exitStatus: null,
  terminationReason: null,
  message: null,
};

// Server variables that may hold credentials stay out of jobs that run on the same host.
const privateEnvName = /^DSTACK_|TOKEN|SECRET|PASSW|CREDENTIAL|API_?KEY|ACCESS_KEY|^AWS_|^GOOGLE_/i;
// Variables that describe the server process itself, not the job.
const processEnvNames = new Set(['PWD', 'OLDPWD', 'NODE_OPTIONS', 'NODE_CHANNEL_FD', 'INIT_CWD']);

/** The environment a local job starts from: the server's, minus anything that may be secret. */
export function baseJobEnv(source: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const env: Record<string, string> = {};

  for (const [name, value] of Object.entries(source)) {
    if (value !== undefined && !privateEnvName.test(name) && !processEnvNames.has(name)) {
      env[name] = value;
    }
  }

  return env;
}

/**
 * The agent of a local instance: it starts a detached runner per job and reads what the
 * runner leaves in the job's directory, so a new agent (after a server restart) carries on
 * where the old one stopped.
 */
export function createLocalAgent(options: LocalAgentOptions): InstanceAgent {
  const log = options.logger.child({ instanceId: options.instanceId });
  const hints = new Map<string, { cursor: number; offset: number }>();
  const runnerStartMillis = options.runnerStartMillis ?? 30_000;
  const jobDir = (id: string): string => join(options.jobsDir, safeId(id));

  async function submit(job: AgentJob): Promise<void> {
    const dir = jobDir(job.jobSubmissionId);
    const workDir = join(dir, 'work');
    await mkdir(workDir, { recursive: true, mode: 0o700 });
    const cwd = job.workingDir === null ? workDir : resolve(workDir, job.workingDir);
    const repo = job.repo ?? null;
    const repoDir = repo === null ? workDir : insideDir(workDir, repo.path);

    const spec = {
      jobSubmissionId: job.jobSubmissionId,
      instanceId: options.instanceId,
      projectName: job.projectName,
      runName: job.runName,
      jobName: job.jobName,
      shell: job.shell ?? (await defaultShell()),
      // As the original's `cmd1 && cmd2`: only a command whose own status is non-zero ends
      // the job, not a failing statement inside one (which `set -e` would end it on).
      script: job.commands
        .map((command) => `${command}\n_rc=$?; [ "$_rc" -eq 0 ] || exit "$_rc"`)
        .join('\n'),
      env: {
        ...baseJobEnv(),
        PYTHONUNBUFFERED: '1',
        ...job.env,
        DSTACK_REPO_DIR: repoDir,
        DSTACK_WORKING_DIR: cwd,
      },
      cwd,
      // After the checkout: git clones only into an empty directory.
      createCwd: !isAbsolute(job.workingDir ?? '') && cwd.startsWith(workDir),
      maxDurationSeconds: job.maxDurationSeconds,
      repo: repo === null ? null : runnerRepoOf(repo, repoDir),
      submittedAt: Date.now(),
    };

    try {
      // The exclusive create makes a second submit of the same submission a no-op.
      await writeFile(join(dir, 'job.json'), JSON.stringify(spec), { flag: 'wx', mode: 0o600 });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
        return;
      }

      throw error;
    }

    if (repo !== null) {
      await writeRepoFiles(dir, repo);
    }

    const runner = await options.runnerPath();
    const output = openSync(join(dir, 'runner-output.log'), 'a', 0o600);

    try {
      const child = spawn(process.execPath, [runner, dir], {
        cwd: dir,
        detached: true,
        stdio: ['ignore', output, output],
        env: baseJobEnv(),
      });
      // Without a handler, a runner that cannot be spawned would take the server down.
      child.on('error', (error) => {
        log.error({ jobSubmissionId: job.jobSubmissionId, err: error.message }, 'runner failed');
        const failed: RunnerState = {
          status: 'failed',
          exitStatus: null,
          terminationReason: 'executor_error',
          message: `cannot start the job runner: ${error.message}`,
        };
        writeFile(join(dir, 'state.json'), JSON.stringify(failed), { mode: 0o600 })
          .catch(() => undefined);
      });
      child.unref();
      await writeFile(join(dir, 'runner.pid'), String(child.pid ?? ''), { mode: 0o600 });
      log.info({ jobSubmissionId: job.jobSubmissionId, runName: job.runName }, 'job submitted');
    } finally {
      closeSync(output);
    }
  }

  async function pull(jobSubmissionId: string, cursor: number): Promise<AgentPull> {
    const dir = jobDir(jobSubmissionId);
    // State first, then events: a final state is written after the last event.
    const state = await currentState(dir);

    if (state === null) {
      return { state: null, jobLogs: [], runnerLogs: [], cursor, hasMore: false };
    }

    const page = await readEventsAfter(
      join(dir, 'events.jsonl'),
      cursor,
      options.pageSize,
      hints.get(jobSubmissionId),
    );
    const jobLogs: LogEvent[] = [];
    const runnerLogs: LogEvent[] = [];

    for (const event of page.events) {
      (event.p === 'runner' ? runnerLogs : jobLogs).push(toLogEvent(event));
    }

    const last = page.events.at(-1);
    const nextCursor = last === undefined ? cursor : last.t;
    hints.set(jobSubmissionId, { cursor: nextCursor, offset: page.endOffset });

    return {
      state: page.hasMore ? runningState : state,
      jobLogs,
      runnerLogs,
      cursor: nextCursor,
      hasMore: page.hasMore,
    };
  }

  async function currentState(dir: string): Promise<AgentJobState | null> {
    const stored = await readJson<RunnerState>(join(dir, 'state.json'));

    if (stored !== null && stored.status !== 'running') {
      return toAgentState(stored);
    }

    const spec = await readJson<{ submittedAt: number }>(join(dir, 'job.json'));

    if (spec === null) {
      return null;
    }

    const runnerPid = stored?.runnerPid ?? (await readPid(join(dir, 'runner.pid')));
    const alive = runnerPid !== null && isRunnerAlive(runnerPid, dir);

    if (alive || (stored === null && Date.now() - spec.submittedAt < runnerStartMillis)) {
      return runningState;
    }

    // The runner may have finished between the two reads.
    const again = await readJson<RunnerState>(join(dir, 'state.json'));

    if (again !== null && again.status !== 'running') {
      return toAgentState(again);
    }

    if (again?.pid !== undefined) {
      signalGroup(again.pid, 'SIGKILL');
    }

    const output = (await readFile(join(dir, 'runner-output.log'), 'utf8').catch(() => ''))
      .trim()
      .slice(-500);
    const message = again === null
      ? 'the job runner did not start'
      : 'the job runner exited unexpectedly';
    log.warn({ dir, output }, message);

    return {
      status: 'failed',
      exitStatus: null,
      terminationReason: 'executor_error',
      message: output === '' ? message : `${message}: ${output}`,
    };
  }

  async function stop(jobSubmissionId: string, stopOptions: { force: boolean }): Promise<void> {
    const dir = jobDir(jobSubmissionId);
    const state = await readJson<RunnerState>(join(dir, 'state.json'));

    if (state !== null && state.status !== 'running') {
      return;
    }

    if (state === null && (await readJson(join(dir, 'job.json'))) === null) {
      return;
    }

    await writeFile(join(dir, 'stop.json'), JSON.stringify({ force: stopOptions.force }));

    if (state?.pid !== undefined) {
      signalGroup(state.pid, stopOptions.force ? 'SIGKILL' : 'SIGTERM');
    }

    log.info({ jobSubmissionId, force: stopOptions.force }, 'job stop requested');
  }

  async function remove(jobSubmissionId: string): Promise<void> {
    const dir = jobDir(jobSubmissionId);
    const state = await readJson<RunnerState>(join(dir, 'state.json'));

    if (state?.status === 'running') {
      if (state.pid !== undefined) {
        signalGroup(state.pid, 'SIGKILL');
      }

      if (state.runnerPid !== undefined && isRunnerAlive(state.runnerPid, dir)) {
        signal(state.runnerPid, 'SIGKILL');
      }
    }

    hints.delete(jobSubmissionId);
    await rm(dir, { recursive: true, force: true });
  }

  // The job's process group, measured through /proc; no group, no sample.
  async function metrics(jobSubmissionId: string): Promise<AgentMetricsSample | null> {
    const state = await readJson<RunnerState>(join(jobDir(jobSubmissionId), 'state.json'));

    if (state?.status !== 'running' || state.pid === undefined || !hasProcfs) {
      return null;
    }

    return sampleProcessGroup(state.pid, { nvidiaSmiPath: options.nvidiaSmiPath });
  }

  async function healthcheck(): Promise<void> {
    await mkdir(options.jobsDir, { recursive: true, mode: 0o700 });
    await access(options.jobsDir, constants.W_OK);
    await options.runnerPath();
  }

  return { healthcheck, submit, pull, stop, remove, metrics };
}

/** `path` resolved inside `dir`; a path that leaves it is refused. */
function insideDir(dir: string, path: string): string {
  const resolved = resolve(dir, path);

  if (resolved !== dir && !resolved.startsWith(dir + sep)) {
    throw new Error(`the repo path ${path} is outside the job's directory`);
  }

  return resolved;
}

/** The repo as `job.json` gives it to the runner: no bytes and no credentials. */
function runnerRepoOf(repo: AgentRepo, dir: string): Record<string, unknown> {
  if (repo.kind === 'archive') {
    return { kind: 'archive', dir, blob: repoBlobName };
  }

  return {
    kind: 'git',
    dir,
    blob: repoBlobName,
    cloneUrl: repo.cloneUrl,
    branch: repo.branch,
    hash: repo.hash,
    configName: repo.configName,
    configEmail: repo.configEmail,
    singleBranch: repo.singleBranch,
  };
}

const repoBlobName = 'repo.blob';

// Credentials sit in a file of their own, which the runner removes before the job starts.
async function writeRepoFiles(dir: string, repo: AgentRepo): Promise<void> {
  const blob = repo.kind === 'archive' ? repo.archive : repo.diff;
  await writeFile(join(dir, repoBlobName), blob, { mode: 0o600 });

  if (repo.kind === 'git' && (repo.privateKey !== null || repo.oauthToken !== null)) {
    const creds = { privateKey: repo.privateKey, oauthToken: repo.oauthToken };
    await writeFile(join(dir, 'repo-creds.json'), JSON.stringify(creds), { mode: 0o600 });
  }
}

function toLogEvent(event: RunnerEvent): LogEvent {
  return {
    timestamp: event.t,
    logSource: event.s === 'stderr' ? 'stderr' : 'stdout',
    message: event.m,
  };
}

function toAgentState(state: RunnerState): AgentJobState {
  return {
    status: state.status,
    exitStatus: state.exitStatus ?? null,
    terminationReason: state.terminationReason ?? null,
    message: state.message ?? null,
  };
}

/** Submission ids become directory names; anything but a plain id is refused. */
function safeId(id: string): string {
  if (!/^[A-Za-z0-9_-]{1,128}$/.test(id)) {
    throw new Error(`invalid job submission id: ${JSON.stringify(id)}`);
  }

  return id;
}

async function readJson<T>(path: string): Promise<T | null> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch {
    return null;
  }
}

async function readPid(path: string): Promise<number | null> {
  const text = await readFile(path, 'utf8').catch(() => '');
  const pid = Number.parseInt(text, 10);
  return Number.isInteger(pid) && pid > 0 ? pid : null;
}

/** Whether the runner of `dir` still runs; a reused pid of another program does not count. */
function isRunnerAlive(pid: number, dir: string): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') {
      return false;
    }
  }

  try {
    // Without procfs (macOS) the signal check has to do.
    const cmdline = readProcCmdline(pid);
    return cmdline === null || cmdline.includes(dir);
  } catch {
    return false;
  }
}

const hasProcfs = existsSync('/proc/self/cmdline');

function readProcCmdline(pid: number): string | null {
  if (!hasProcfs) {
    return null;
  }

  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
}

function signalGroup(pid: number, name: NodeJS.Signals): void {
  signal(-pid, name);
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') {
      throw error;
    }
  }
}

async function defaultShell(): Promise<string> {
  for (const candidate of ['/bin/bash', '/usr/bin/bash', '/usr/local/bin/bash']) {
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // try the next one
    }
  }

  return '/bin/sh';
}
