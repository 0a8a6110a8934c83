import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type {
  AgentJob,
  AgentJobState,
  AgentPull,
  InstanceAgent,
  LogEvent,
} from '@dstack/core';

interface SandboxEvent extends LogEvent {
  producer: 'job' | 'runner';
}

/** One job of the sandbox: its process and everything it printed, kept in memory. */
interface SandboxJob {
  events: SandboxEvent[];
  state: AgentJobState;
  child: ChildProcess | null;
  dir: string;
  lastTimestamp: number;
  stopRequested: boolean;
  maxDurationExceeded: boolean;
}

/** Jobs of every sandbox instance, shared by all agent objects of the provider. */
export type SandboxJobs = Map<string, SandboxJob>;

export interface SandboxAgentOptions {
  jobs: SandboxJobs;
  /** Scratch directories of jobs go here. */
  scratchDir: string;
  /** At most this many events per pull. */
  pageSize: number;
}

const running: AgentJobState = {
  status: 'running',
  exitStatus: null,
  terminationReason: null,
  message: null,
};

/**
 * The sandbox agent: a job is a `sh -c` child of the server in a scratch directory, with a
 * minimal environment. Unlike the built-in local backend, its jobs end with the server.
 */
export function createSandboxAgent(options: SandboxAgentOptions): InstanceAgent {
  const { jobs } = options;

  function record(job: SandboxJob, producer: 'job' | 'runner', source: 'stdout' | 'stderr',
    message: string): void {
    const now = Date.now();
    job.lastTimestamp = now > job.lastTimestamp ? now : job.lastTimestamp + 1;
    job.events.push({ timestamp: job.lastTimestamp, logSource: source, message, producer });
  }

  function capture(job: SandboxJob, stream: NodeJS.ReadableStream, source: 'stdout' | 'stderr') {
    let pending = '';
    stream.setEncoding('utf8');
    stream.on('data', (text: string) => {
      const lines = (pending + text).split(/(?<=\n)/);
      pending = lines.at(-1)?.endsWith('\n') ? '' : (lines.pop() ?? '');
      lines.forEach((line) => record(job, 'job', source, line));
    });
    stream.on('end', () => {
      if (pending !== '') {
        record(job, 'job', source, pending);
      }
    });
  }

  function finish(job: SandboxJob, code: number | null, signal: NodeJS.Signals | null): void {
    // A process that never started has its state already (and a meaningless exit code).
    if (job.state.status !== 'running') {
      return;
    }

    const exitStatus = code ?? 128;
    let state: AgentJobState;

    if (job.maxDurationExceeded) {
      state = { status: 'terminated', exitStatus, terminationReason: 'max_duration_exceeded',
        message: 'max_duration exceeded' };
    } else if (job.stopRequested) {
      state = { status: 'terminated', exitStatus, terminationReason: 'terminated_by_user',
        message: `stopped (${signal ?? code})` };
    } else if (code === 0) {
      state = { status: 'done', exitStatus, terminationReason: 'done_by_runner', message: null };
    } else {
      state = { status: 'failed', exitStatus, terminationReason: 'container_exited_with_error',
        message: `exited with ${signal ?? code}` };
    }

    record(job, 'runner', 'stdout', `sandbox: job ${state.status}\n`);
    job.state = state;
    job.child = null;
  }

  async function submit(spec: AgentJob): Promise<void> {
    if (jobs.has(spec.jobSubmissionId)) {
      return;
    }

    const dir = join(options.scratchDir, spec.jobSubmissionId);
    const job: SandboxJob = {
      events: [], state: running, child: null, dir, lastTimestamp: 0,
      stopRequested: false, maxDurationExceeded: false,
    };
    jobs.set(spec.jobSubmissionId, job);
    await mkdir(dir, { recursive: true });

    const child = spawn(spec.shell ?? 'sh', ['-c', ['set -e', ...spec.commands].join('\n')], {
      cwd: spec.workingDir === null ? dir : join(dir, spec.workingDir),
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, ...spec.env },
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    job.child = child;
    record(job, 'runner', 'stdout', `sandbox: starting in ${dir}\n`);
    capture(job, child.stdout, 'stdout');
    capture(job, child.stderr, 'stderr');
    child.on('error', (error) => {
      record(job, 'runner', 'stderr', `sandbox: cannot start: ${error.message}\n`);
      job.state = { status: 'failed', exitStatus: null, terminationReason: 'executor_error',
        message: `cannot start: ${error.message}` };
      job.child = null;
    });
    child.on('close', (code, signal) => finish(job, code, signal));

    if (spec.maxDurationSeconds !== null) {
      setTimeout(() => {
        if (job.child === child) {
          job.maxDurationExceeded = true;
          signalGroup(child, 'SIGKILL');
        }
      }, spec.maxDurationSeconds * 1000).unref();
    }
  }

  async function pull(jobSubmissionId: string, cursor: number): Promise<AgentPull> {
    const job = jobs.get(jobSubmissionId);

    if (job === undefined) {
      return { state: null, jobLogs: [], runnerLogs: [], cursor, hasMore: false };
    }

    // Read the state before the events: a final state means every event is already there.
    const state = job.state;
    const newer = job.events.filter((event) => event.timestamp > cursor);
    const page = newer.slice(0, options.pageSize);
    const hasMore = newer.length > page.length;
    const strip = ({ producer: _producer, ...event }: SandboxEvent): LogEvent => event;

    return {
      state: hasMore ? running : state,
      jobLogs: page.filter((event) => event.producer === 'job').map(strip),
      runnerLogs: page.filter((event) => event.producer === 'runner').map(strip),
      cursor: page.at(-1)?.timestamp ?? cursor,
      hasMore,
    };
  }

  async function stop(jobSubmissionId: string, stopOptions: { force: boolean }): Promise<void> {
    const job = jobs.get(jobSubmissionId);

    if (job?.child) {
      job.stopRequested = true;
      signalGroup(job.child, stopOptions.force ? 'SIGKILL' : 'SIGTERM');
    }
  }

  async function remove(jobSubmissionId: string): Promise<void> {
    const job = jobs.get(jobSubmissionId);

    if (job === undefined) {
      return;
    }

    if (job.child) {
      signalGroup(job.child, 'SIGKILL');
    }

    jobs.delete(jobSubmissionId);
    await rm(job.dir, { recursive: true, force: true });
  }

  return {
    healthcheck: async () => {
      await mkdir(options.scratchDir, { recursive: true });
    },
    submit,
    pull,
    stop,
    remove,
  };
}

function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-(child.pid ?? 0), signal);
  } catch {
    // the group is already gone
  }
}
