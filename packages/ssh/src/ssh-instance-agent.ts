import type {
  AgentJob,
  AgentJobState,
  AgentMetricsSample,
  AgentRepo,
  AgentPull,
  InstanceAgent,
  LogEvent,
  Logger,
} from '@dstack/core';
import { callRunner, ensureRunner, parseRunnerReply, uploadRepoBlob } from './runner-client.js';
import { classifySshError, SshHostError } from './ssh-host-error.js';
import type { SshConnection } from './ssh-connection.js';

export interface SshInstanceAgentOptions {
  /** The host's pooled connection, logged in with the project key. */
  connection: () => Promise<SshConnection>;
  /** Releases the pooled connection. */
  release: () => void;
  commandTimeoutMillis: number;
  /** How many bytes of events one pull reads at most. */
  pullMaxBytes: number;
  /** Between SIGTERM and SIGKILL when `max_duration` ends a job. */
  stopGraceSeconds: number;
  logger: Logger;
}

interface RunnerState {
  status: 'running' | 'done' | 'failed' | 'terminated';
  exit_status?: number | null;
  termination_reason?: string | null;
  message?: string | null;
}

interface PullHeader {
  known: boolean;
  state?: RunnerState | null;
  next?: number;
  has_more?: boolean;
}

interface MetricsReply {
  available: boolean;
  timestamp_micro?: number;
  cpu_usage_micro?: number;
  memory_usage_bytes?: number;
  memory_working_set_bytes?: number;
  gpus?: { gpu_memory_usage_bytes: number; gpu_util_percent: number }[];
}

/** The runner's `metrics` answer as a sample; null when it took none. */
function metricsSampleOf(answer: MetricsReply): AgentMetricsSample | null {
  if (!answer.available) {
    return null;
  }

  return {
    timestampMicro: answer.timestamp_micro ?? 0,
    cpuUsageMicro: answer.cpu_usage_micro ?? 0,
    memoryUsageBytes: answer.memory_usage_bytes ?? 0,
    memoryWorkingSetBytes: answer.memory_working_set_bytes ?? 0,
    gpus: (answer.gpus ?? []).map((gpu) => ({
      memoryUsageBytes: gpu.gpu_memory_usage_bytes,
      utilPercent: gpu.gpu_util_percent,
    })),
  };
}

interface RunnerEvent {
  t: number;
  s: 'o' | 'e' | 'r';
  m: string;
}

function checkJobId(id: string): string {
  if (!/^[A-Za-z0-9_-]{1,100}$/.test(id)) {
    throw new Error(`not a job submission id: ${id}`);
  }

  return id;
}

function toAgentState(state: RunnerState): AgentJobState {
  return {
    status: state.status,
    exitStatus: state.exit_status ?? null,
    terminationReason: state.termination_reason ?? null,
    message: state.message ?? null,
  };
}

function reply<T>(label: string, stdout: Buffer): { reply: T; rest: Buffer } {
  const parsed = parseRunnerReply<T>(stdout);
  if (parsed === null) {
    const start = stdout.toString('utf8').slice(0, 200);
    throw new SshHostError(label, 'command_failed', `the agent gave no answer: ${start}`);
  }

  return parsed;
}

/** Reads the runner's pull output: a JSON header line, then the event lines. */
export function parsePullOutput(label: string, stdout: Buffer, cursor: number): AgentPull {
  const { reply: header, rest } = reply<PullHeader>(label, stdout);
  if (!header.known) {
    return { state: null, jobLogs: [], runnerLogs: [], cursor, hasMore: false };
  }

  const jobLogs: LogEvent[] = [];
  const runnerLogs: LogEvent[] = [];
  const body = rest.toString('utf8');
  for (const line of body.split('\n')) {
    if (line === '') {
      continue;
    }

    const event = JSON.parse(line) as RunnerEvent;
    if (event.s === 'r') {
      runnerLogs.push({ timestamp: event.t, logSource: 'stdout', message: event.m });
    } else {
      const logSource = event.s === 'e' ? 'stderr' : 'stdout';
      jobLogs.push({ timestamp: event.t, logSource, message: event.m });
    }
  }

  return {
    state: header.state ? toAgentState(header.state) : null,
    jobLogs,
    runnerLogs,
    cursor: header.next ?? cursor,
    hasMore: header.has_more ?? false,
  };
}

/**
 * The repo as the runner's spec gives it; the bytes go over SFTP, and the credentials into a
 * file of their own that the runner removes once the clone is done.
 */
function runnerRepoOf(repo: AgentRepo | null): Record<string, unknown> {
  if (repo === null) {
    return {};
  }

  if (repo.kind === 'archive') {
    return { repo: { kind: 'archive', path: repo.path, blob: true } };
  }

  const creds = repo.privateKey === null && repo.oauthToken === null
    ? null
    : { private_key: repo.privateKey, oauth_token: repo.oauthToken };

  return {
    repo: {
      kind: 'git',
      path: repo.path,
      blob: true,
      clone_url: repo.cloneUrl,
      branch: repo.branch,
      hash: repo.hash,
      config_name: repo.configName,
      config_email: repo.configEmail,
      single_branch: repo.singleBranch,
    },
    repo_creds: creds,
  };
}

/**
 * An InstanceAgent for an SSH host: every call is one runner invocation over the pooled
 * connection, so a dropped connection or a restarted server loses nothing the host keeps.
 */
export function createSshInstanceAgent(options: SshInstanceAgentOptions): InstanceAgent {
  const timeoutMillis = options.commandTimeoutMillis;
  const ready = async (): Promise<SshConnection> => {
    const connection = await options.connection();
    await ensureRunner(connection, timeoutMillis).catch((error: unknown) => {
      throw classifySshError(connection.label, error);
    });

    return connection;
  };

  // Every runner command is idempotent, so one that failed on a connection that turned out
  // dead (the network dropped, sshd restarted) is tried once more on a fresh connection.
  const retried = async <T>(call: (connection: SshConnection) => Promise<T>): Promise<T> => {
    for (let attempt = 0; ; attempt += 1) {
      const connection = await ready();
      try {
        return await call(connection);
      } catch (error) {
        const fast = !(error instanceof SshHostError) || error.reason !== 'timeout';
        if (attempt > 0 || !connection.closed || !fast) {
          throw error;
        }
      }
    }
  };

  const run = (
    args: readonly (string | number)[],
    stdin?: string,
  ): Promise<{ out: Buffer; label: string }> => retried(async (connection) => {
    const out = await callRunner(connection, args, { stdin, timeoutMillis });

    return { out, label: connection.label };
  });

  return {
    async healthcheck() {
      await run(['health']);
    },

    async submit(job: AgentJob) {
      const id = checkJobId(job.jobSubmissionId);
      const spec = {
        commands: job.commands,
        shell: job.shell,
        env: job.env,
        working_dir: job.workingDir,
        max_duration: job.maxDurationSeconds,
        stop_grace_seconds: options.stopGraceSeconds,
        ...runnerRepoOf(job.repo ?? null),
      };

      if (job.repo) {
        const blob = job.repo.kind === 'archive' ? job.repo.archive : job.repo.diff;
        await retried((connection) => uploadRepoBlob(connection, id, blob, timeoutMillis));
      }

      const { out, label } = await run(['submit', id], JSON.stringify(spec));
      const { submitted } = reply<{ submitted: boolean }>(label, out).reply;
      const fields = { jobSubmissionId: id, jobName: job.jobName, submitted };
      options.logger.info(fields, 'job submitted');
    },

    async pull(jobSubmissionId: string, cursor: number) {
      const id = checkJobId(jobSubmissionId);
      const args = ['pull', id, Math.max(0, Math.floor(cursor)), options.pullMaxBytes];
      const { out, label } = await run(args);

      return parsePullOutput(label, out, cursor);
    },

    async stop(jobSubmissionId: string, { force }: { force: boolean }) {
      const id = checkJobId(jobSubmissionId);
      await run(['stop', id, force ? 'kill' : 'term']);
      options.logger.info({ jobSubmissionId: id, force }, 'job stop requested');
    },

    async remove(jobSubmissionId: string) {
      const id = checkJobId(jobSubmissionId);
      await run(['remove', id]);
    },

    async metrics(jobSubmissionId: string) {
      const id = checkJobId(jobSubmissionId);
      const { out, label } = await run(['metrics', id]);

      return metricsSampleOf(reply<MetricsReply>(label, out).reply);
    },

    async close() {
      options.release();
    },
  };
}
