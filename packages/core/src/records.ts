/**
 * Records: the rows the StateStore keeps, one interface per table.
 *
 * Times are epoch milliseconds (UTC). `json` columns hold parsed values. Columns that the
 * Cipher protects hold the stored string (`enc:<type>:<name>:<payload>`), never plaintext.
 */

/** The lease columns of a table that background pipelines claim rows from. */
export interface LeaseColumns {
  lockToken: string | null;
  lockOwner: string | null;
  lockExpiresAt: number | null;
}

export interface UserRecord {
  id: string;
  name: string;
  createdAt: number;
  /** Encrypted token. */
  token: string;
  /** SHA-256 hex of the plaintext token, for lookup. */
  tokenHash: string;
  globalRole: 'admin' | 'user';
  email: string | null;
  active: boolean;
  deleted: boolean;
  originalName: string | null;
  sshPublicKey: string | null;
  /** Encrypted private key. */
  sshPrivateKey: string | null;
}

export interface ProjectRecord {
  id: string;
  name: string;
  createdAt: number;
  ownerId: string;
  isPublic: boolean;
  templatesRepo: string | null;
  deleted: boolean;
  originalName: string | null;
  sshPublicKey: string | null;
  /** Encrypted private key. */
  sshPrivateKey: string | null;
}

export interface MemberRecord {
  id: string;
  projectId: string;
  userId: string;
  projectRole: 'admin' | 'manager' | 'user';
  memberNum: number;
}

export interface BackendRecord {
  id: string;
  projectId: string;
  type: string;
  /** Stored config without credentials. */
  config: unknown;
  /** Encrypted credentials JSON, or null for backends without any. */
  auth: string | null;
  /** The user's input without credentials, to tell whether config.yml changed. */
  sourceConfig: unknown;
  /** Encrypted credentials as the user gave them. */
  sourceAuth: string | null;
}

export interface SecretRecord {
  id: string;
  projectId: string;
  name: string;
  /** Encrypted value. */
  value: string;
  createdAt: number;
  updatedAt: number;
}

export interface RepoRecord {
  id: string;
  projectId: string;
  name: string;
  type: string;
  info: unknown;
  /** Encrypted credentials JSON. */
  creds: string | null;
}

export interface FleetRecord extends LeaseColumns {
  id: string;
  projectId: string;
  name: string;
  createdAt: number;
  lastProcessedAt: number;
  deleted: boolean;
  deletedAt: number | null;
  status: string;
  statusMessage: string | null;
  spec: unknown;
  consolidationAttempt: number;
}

export interface InstanceRecord extends LeaseColumns {
  id: string;
  projectId: string;
  fleetId: string | null;
  name: string;
  instanceNum: number;
  createdAt: number;
  lastProcessedAt: number;
  deleted: boolean;
  deletedAt: number | null;
  status: string;
  unreachable: boolean;
  startedAt: number | null;
  finishedAt: number | null;
  backend: string | null;
  region: string | null;
  availabilityZone: string | null;
  price: number | null;
  /** Wire `instance_type` ({name, resources}). */
  instanceType: unknown;
  offer: unknown;
  /** Wire `job_provisioning_data` of the instance. */
  provisioningData: unknown;
  /** Encrypted JSON of an SSH host's connection info (keys included). */
  remoteConnectionInfo: string | null;
  /** The profile and requirements the instance was created for. */
  profile: unknown;
  totalBlocks: number | null;
  busyBlocks: number;
  terminationPolicy: string | null;
  /** Seconds an idle instance is kept; -1 keeps it forever. */
  terminationIdleTime: number;
  terminationDeadline: number | null;
  terminationReason: string | null;
  terminationReasonMessage: string | null;
  lastJobProcessedAt: number | null;
  /** Set on a placeholder instance that holds a slot for a job being provisioned. */
  provisioningJobId: string | null;
  health: string;
  firstTerminationRetryAt: number | null;
}

export interface RunRecord extends LeaseColumns {
  id: string;
  projectId: string;
  userId: string;
  repoId: string | null;
  fleetId: string | null;
  runName: string;
  submittedAt: number;
  lastProcessedAt: number;
  status: string;
  statusMessage: string | null;
  terminationReason: string | null;
  resubmissionAttempt: number;
  runSpec: unknown;
  serviceSpec: unknown;
  priority: number;
  deploymentNum: number;
  deleted: boolean;
  nextTriggeredAt: number | null;
}

export interface JobRecord extends LeaseColumns {
  id: string;
  projectId: string;
  runId: string;
  fleetId: string | null;
  runName: string;
  jobNum: number;
  jobName: string;
  replicaNum: number;
  submissionNum: number;
  deploymentNum: number;
  submittedAt: number;
  lastProcessedAt: number;
  finishedAt: number | null;
  status: string;
  statusMessage: string | null;
  terminationReason: string | null;
  terminationReasonMessage: string | null;
  exitStatus: number | null;
  jobSpec: unknown;
  provisioningData: unknown;
  runtimeData: unknown;
  /** The agent's log cursor: logs up to here are stored. */
  runnerTimestamp: number | null;
  disconnectedAt: number | null;
  instanceId: string | null;
  usedInstanceId: string | null;
  instanceAssigned: boolean;
  gracefulTerminationAttempts: number | null;
  removeAt: number | null;
  waitingMasterJob: boolean;
}

export interface EventRecord {
  id: string;
  message: string;
  recordedAt: number;
  actorUserId: string | null;
  targets: unknown;
}

/** One user's credentials for a remote repo; they take precedence over `repos.creds`. */
export interface RepoCredsRecord {
  id: string;
  repoId: string;
  userId: string;
  /** Encrypted credentials JSON. */
  creds: string;
}

/** A code blob (a diff or tarball) uploaded for a repo, by the hash the client names it. */
export interface CodeRecord {
  id: string;
  repoId: string;
  blobHash: string;
  /** The blob, base64. */
  blob: string;
}

/** An SSH public key a user uploaded; the fingerprint is unique per user. */
export interface UserPublicKeyRecord {
  id: string;
  userId: string;
  name: string;
  type: string;
  /** `SHA256:<base64>` of the key blob, as OpenSSH prints it. */
  fingerprint: string;
  /** The key in OpenSSH format, as given. */
  key: string;
  createdAt: number;
}

/** One metrics sample of a job, as the collection task stores it. */
export interface JobMetricsPointRecord {
  id: string;
  jobId: string;
  /** When the agent took the sample, in microseconds since the epoch. */
  timestampMicro: number;
  /** The job's cumulative CPU time, in microseconds. */
  cpuUsageMicro: number;
  memoryUsageBytes: number;
  memoryWorkingSetBytes: number;
  /** Memory used on each GPU, in bytes, in the instance's GPU order. */
  gpusMemoryUsageBytes: number[];
  /** Utilization of each GPU, 0 to 100. */
  gpusUtilPercent: number[];
}

/** Every table the StateStore keeps, by name. */
export interface TableRows {
  users: UserRecord;
  projects: ProjectRecord;
  members: MemberRecord;
  backends: BackendRecord;
  secrets: SecretRecord;
  repos: RepoRecord;
  fleets: FleetRecord;
  instances: InstanceRecord;
  runs: RunRecord;
  jobs: JobRecord;
  events: EventRecord;
  repo_creds: RepoCredsRecord;
  codes: CodeRecord;
  user_public_keys: UserPublicKeyRecord;
  job_metrics_points: JobMetricsPointRecord;
}

export type TableName = keyof TableRows;

/** Tables whose rows background pipelines claim with a lease. */
export type LeasedTableName = 'fleets' | 'instances' | 'runs' | 'jobs';

/** How a column is stored: SQL adapters convert values by this kind. */
export type ColumnKind = 'text' | 'integer' | 'real' | 'boolean' | 'json' | 'time';

const lease = { lockToken: 'text', lockOwner: 'text', lockExpiresAt: 'time' } as const;

/**
 * The column kinds of every table. The in-memory store ignores them; SQL stores use them to
 * convert values and the migrations mirror them.
 */
export const tableColumns: { [T in TableName]: { [C in keyof TableRows[T]]-?: ColumnKind } } = {
  users: {
    id: 'text', name: 'text', createdAt: 'time', token: 'text', tokenHash: 'text',
    globalRole: 'text', email: 'text', active: 'boolean', deleted: 'boolean',
    originalName: 'text', sshPublicKey: 'text', sshPrivateKey: 'text',
  },
  projects: {
    id: 'text', name: 'text', createdAt: 'time', ownerId: 'text', isPublic: 'boolean',
    templatesRepo: 'text', deleted: 'boolean', originalName: 'text', sshPublicKey: 'text',
    sshPrivateKey: 'text',
  },
  members: {
    id: 'text', projectId: 'text', userId: 'text', projectRole: 'text', memberNum: 'integer',
  },
  backends: {
    id: 'text', projectId: 'text', type: 'text', config: 'json', auth: 'text',
    sourceConfig: 'json', sourceAuth: 'text',
  },
  secrets: {
    id: 'text', projectId: 'text', name: 'text', value: 'text', createdAt: 'time',
    updatedAt: 'time',
  },
  repos: { id: 'text', projectId: 'text', name: 'text', type: 'text', info: 'json', creds: 'text' },
  fleets: {
    id: 'text', projectId: 'text', name: 'text', createdAt: 'time', lastProcessedAt: 'time',
    deleted: 'boolean', deletedAt: 'time', status: 'text', statusMessage: 'text', spec: 'json',
    consolidationAttempt: 'integer', ...lease,
  },
  instances: {
    id: 'text', projectId: 'text', fleetId: 'text', name: 'text', instanceNum: 'integer',
    createdAt: 'time', lastProcessedAt: 'time', deleted: 'boolean', deletedAt: 'time',
    status: 'text', unreachable: 'boolean', startedAt: 'time', finishedAt: 'time',
    backend: 'text', region: 'text', availabilityZone: 'text', price: 'real',
    instanceType: 'json', offer: 'json', provisioningData: 'json', remoteConnectionInfo: 'text',
    profile: 'json', totalBlocks: 'integer', busyBlocks: 'integer', terminationPolicy: 'text',
    terminationIdleTime: 'integer', terminationDeadline: 'time', terminationReason: 'text',
    terminationReasonMessage: 'text', lastJobProcessedAt: 'time', provisioningJobId: 'text',
    health: 'text', firstTerminationRetryAt: 'time', ...lease,
  },
  runs: {
    id: 'text', projectId: 'text', userId: 'text', repoId: 'text', fleetId: 'text',
    runName: 'text', submittedAt: 'time', lastProcessedAt: 'time', status: 'text',
    statusMessage: 'text', terminationReason: 'text', resubmissionAttempt: 'integer',
    runSpec: 'json', serviceSpec: 'json', priority: 'integer', deploymentNum: 'integer',
    deleted: 'boolean', nextTriggeredAt: 'time', ...lease,
  },
  jobs: {
    id: 'text', projectId: 'text', runId: 'text', fleetId: 'text', runName: 'text',
    jobNum: 'integer', jobName: 'text', replicaNum: 'integer', submissionNum: 'integer',
    deploymentNum: 'integer', submittedAt: 'time', lastProcessedAt: 'time', finishedAt: 'time',
    status: 'text', statusMessage: 'text', terminationReason: 'text',
    terminationReasonMessage: 'text', exitStatus: 'integer', jobSpec: 'json',
    provisioningData: 'json', runtimeData: 'json', runnerTimestamp: 'integer',
    disconnectedAt: 'time', instanceId: 'text', usedInstanceId: 'text',
    instanceAssigned: 'boolean', gracefulTerminationAttempts: 'integer', removeAt: 'time',
    waitingMasterJob: 'boolean', ...lease,
  },
  events: {
    id: 'text', message: 'text', recordedAt: 'time', actorUserId: 'text', targets: 'json',
  },
  repo_creds: { id: 'text', repoId: 'text', userId: 'text', creds: 'text' },
  codes: { id: 'text', repoId: 'text', blobHash: 'text', blob: 'text' },
  user_public_keys: {
    id: 'text', userId: 'text', name: 'text', type: 'text', fingerprint: 'text', key: 'text',
    createdAt: 'time',
  },
  job_metrics_points: {
    id: 'text', jobId: 'text', timestampMicro: 'integer', cpuUsageMicro: 'integer',
    memoryUsageBytes: 'integer', memoryWorkingSetBytes: 'integer',
    gpusMemoryUsageBytes: 'json', gpusUtilPercent: 'json',
  },
};
