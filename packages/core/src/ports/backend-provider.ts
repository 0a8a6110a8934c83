import type {
  InstanceOffer,
  JobProvisioningData,
  Requirements,
} from '../domain/resources.js';
import type { LogEvent } from './log-store.js';

/** A backend as configured in one project. */
export interface BackendSettings {
  projectName: string;
  /** The stored config, without credentials. */
  config: Record<string, unknown>;
  /** Decrypted credentials, or null. */
  creds: Record<string, unknown> | null;
}

export interface OffersRequest extends BackendSettings {
  requirements: Requirements;
}

export interface CreateInstanceRequest extends BackendSettings {
  offer: InstanceOffer;
  /** `<fleet>-<num>`, unique in the project. */
  instanceName: string;
  instanceId: string;
}

export interface TerminateInstanceRequest extends BackendSettings {
  provisioningData: JobProvisioningData;
}

/** A repo given as a tar archive of its files (`repo_type: local`). */
export interface AgentArchiveRepo {
  kind: 'archive';
  /** Where the repo lands, relative to the job's own directory; `.` is that directory. */
  path: string;
  /** An uncompressed tar archive; empty means no files. */
  archive: Uint8Array;
}

/** A git repo to clone at a commit, with the client's uncommitted changes (`remote`). */
export interface AgentGitRepo {
  kind: 'git';
  /** Where the repo lands, relative to the job's own directory; `.` is that directory. */
  path: string;
  cloneUrl: string;
  /** The branch to clone; null = the remote's default branch. */
  branch: string | null;
  /** The commit to check out; null = the head of the branch. */
  hash: string | null;
  /** A `git diff --binary` applied after the checkout; empty means no changes. */
  diff: Uint8Array;
  /** Decrypted credentials for the clone; the agent never logs them nor leaves them behind. */
  privateKey: string | null;
  oauthToken: string | null;
  /** `user.name` and `user.email` set in the clone's git config when not null. */
  configName: string | null;
  configEmail: string | null;
  /** Clones only the branch. */
  singleBranch: boolean;
}

/** The code a job starts with. */
export type AgentRepo = AgentArchiveRepo | AgentGitRepo;

/** What to run: the agent gets everything already resolved (env interpolated, secrets in). */
export interface AgentJob {
  jobSubmissionId: string;
  projectName: string;
  runName: string;
  jobName: string;
  /** Shell command lines, run in order in one shell; the first failure ends the job. */
  commands: string[];
  /** `sh`, `bash` or an absolute path; null picks bash where there is one. */
  shell: string | null;
  env: Record<string, string>;
  /** Absolute, or relative to the job's own directory; null means the job's own directory. */
  workingDir: string | null;
  /** The agent ends the job as `max_duration_exceeded` after this long; null = no limit. */
  maxDurationSeconds: number | null;
  /**
   * The repo to check out before the commands start; null or absent for runs without code
   * (a virtual repo), which start in an empty directory. An agent that supports repos puts
   * it at `repo.path` inside the job's own directory, never writing outside that directory
   * (an absolute or `..` archive entry fails the job), and sets `DSTACK_REPO_DIR` and
   * `DSTACK_WORKING_DIR` to the absolute paths. A checkout that fails ends the job as
   * `failed`, `container_exited_with_error`, with a message that starts
   * `Failed to set up the repo`. An agent that ignores the field runs the job without code.
   */
  repo?: AgentRepo | null;
}

/** The agent's view of a job, as of one pull. */
export interface AgentJobState {
  status: 'running' | 'done' | 'failed' | 'terminated';
  exitStatus: number | null;
  /** A job termination reason (`done_by_runner`, `max_duration_exceeded`, ...). */
  terminationReason: string | null;
  message: string | null;
}

export interface AgentPull {
  /** Null until the agent knows the job (right after submit). */
  state: AgentJobState | null;
  jobLogs: LogEvent[];
  runnerLogs: LogEvent[];
  /** Pass it to the next pull: events up to it were returned. */
  cursor: number;
  /** More events are waiting past this page. */
  hasMore: boolean;
}

/** One GPU as a metrics sample sees it. */
export interface AgentGpuMetrics {
  /** GPU memory the job uses, in bytes. */
  memoryUsageBytes: number;
  /** Utilization of the GPU, 0 to 100. */
  utilPercent: number;
}

/**
 * One sample of a job's resource use, taken on the instance. CPU time is cumulative, so two
 * samples give the usage between them.
 */
export interface AgentMetricsSample {
  /** When the sample was taken (the instance's clock), in microseconds since the epoch. */
  timestampMicro: number;
  /** CPU time the job has used since it started, in microseconds. */
  cpuUsageMicro: number;
  /** Memory the job uses, in bytes. */
  memoryUsageBytes: number;
  /** The part of `memoryUsageBytes` the job cannot give back without paging (no cache). */
  memoryWorkingSetBytes: number;
  /** One entry per GPU the job sees, in the instance's GPU order; empty without GPUs. */
  gpus: AgentGpuMetrics[];
}

/**
 * Runs jobs on one instance. Jobs keep running and keep their output when the server stops,
 * so a restarted server pulls from its stored cursor with nothing lost or repeated.
 */
export interface InstanceAgent {
  /** Resolves when the instance can take jobs; rejects with the reason when it cannot. */
  healthcheck(): Promise<void>;

  /** Starts a job. Submitting the same submission id again does nothing. */
  submit(job: AgentJob): Promise<void>;

  /** State and the log events newer than `cursor`. */
  pull(jobSubmissionId: string, cursor: number): Promise<AgentPull>;

  /** Asks the job to stop (SIGTERM to its process group), or kills it when `force`. */
  stop(jobSubmissionId: string, options: { force: boolean }): Promise<void>;

  /** Forgets a job and what it kept; a job still running is killed first. */
  remove(jobSubmissionId: string): Promise<void>;

  /**
   * A sample of a running job's resource use, or null when none can be taken (the job is
   * unknown, not running yet or already ended, or the instance cannot measure it). An agent
   * without this member collects no metrics.
   */
  metrics?(jobSubmissionId: string): Promise<AgentMetricsSample | null>;

  /** Releases connections to the instance. */
  close?(): Promise<void>;
}

/** An on-prem host of an SSH fleet, as the server reaches it. */
export interface RemoteHost {
  hostname: string;
  port: number;
  user: string;
  /** Decrypted private key (OpenSSH or PEM) the server logs in with first. */
  privateKey: string;
  proxyJump: { hostname: string; port: number; user: string; privateKey: string } | null;
  internalIp: string | null;
  blocks: number | 'auto';
  /** Fleet-wide `env`, merged into every job on the host. */
  env: Record<string, string>;
  /** The project's key pair: its public half is installed for later connections. */
  projectPublicKey: string;
  projectPrivateKey: string;
}

/** What provisioning found on a host. */
export interface ProvisionedHost {
  provisioningData: JobProvisioningData;
  totalBlocks: number;
}

/** What a backend type can do, so the planner does not offer what it cannot run. */
export interface BackendCapabilities {
  /** Runs container images (`image:` in a configuration). */
  images: boolean;
  /** Several jobs of one multi-node task can reach each other. */
  multinode: boolean;
  /**
   * Jobs on one instance share its network ports (no container of their own), so a new
   * service replica cannot start beside the one it replaces: rollouts stop one first.
   */
  sharedHostPorts?: boolean;
}

/**
 * A backend type's plug-in. The server registers providers by `type`; a project uses a type
 * once a backend of that type is configured in it.
 */
export interface BackendProvider {
  readonly type: string;
  readonly capabilities: BackendCapabilities;

  /** JSON Schema of the config (credentials included) the API and config.yml accept. */
  readonly configSchema?: object;

  /**
   * Checks config and credentials before they are stored; throws a ServerClientError with
   * code `invalid_credentials` (and the field paths) when they are wrong.
   */
  checkConfig?(settings: BackendSettings): Promise<void>;

  /** Offers that meet the requirements, cheapest first. An empty list means none fit. */
  getOffers(request: OffersRequest): Promise<InstanceOffer[]>;

  /** Creates an instance for an offer; resolves once it exists (it may still be booting). */
  createInstance(request: CreateInstanceRequest): Promise<JobProvisioningData>;

  /** Ends an instance. Ending one that is already gone resolves. */
  terminateInstance(request: TerminateInstanceRequest): Promise<void>;

  /** The agent of an instance this provider created. */
  agent(provisioningData: JobProvisioningData): InstanceAgent;

  /**
   * SSH fleets only: prepares a host the user owns (resources detected, project key
   * installed) within `timeoutMillis`; rejects with a message naming the host and the cause.
   */
  provisionHost?(host: RemoteHost, options: { timeoutMillis: number }): Promise<ProvisionedHost>;

  /** SSH fleets only: leaves the host as it was before provisioning (the key removed). */
  releaseHost?(host: RemoteHost): Promise<void>;
}
