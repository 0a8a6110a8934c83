/**
 * Normalised run, fleet and profile configurations, in the shapes the original serializes
 * (snake_case, every field present, durations in seconds, memory in GB).
 */
import type { Range, ResourcesSpec } from './resources.js';

/** A variable left without a value (`env: [NAME]`), filled from the client's environment. */
export interface EnvSentinel {
  key: string;
}

export type Env = Record<string, string | EnvSentinel>;

/** `local_port` null means "any free port" (`*:8080`). */
export interface PortMapping {
  local_port: number | null;
  container_port: number;
}

export type BackendType = string;
export type SpotPolicy = 'spot' | 'on-demand' | 'auto';
export type CreationPolicy = 'reuse' | 'reuse-or-create';
export type StartupOrder = 'any' | 'master-first' | 'workers-first';
export type StopCriteria = 'all-done' | 'master-done';
export type RetryEvent = 'no-capacity' | 'interruption' | 'error';

export interface ProfileRetry {
  /** Null retries on every event. */
  on_events: RetryEvent[] | null;
  /** Seconds; null means the default of one hour. */
  duration: number | null;
}

export interface UtilizationPolicy {
  min_gpu_utilization: number;
  /** Seconds. */
  time_window: number;
}

export interface Schedule {
  cron: string[];
}

/** A reference to an entity of this project (`project` null) or of another one. */
export interface EntityReference {
  project: string | null;
  name: string;
}

export type InstanceSelector =
  | { name: string }
  | { hostname: string }
  | { fleet: EntityReference; instance: number };

export interface VastAiBackendOptions {
  type: 'vastai';
  [key: string]: unknown;
}

/** The provisioning parameters shared by profiles and run configurations. */
export interface ProfileParams {
  backends: BackendType[] | null;
  regions: string[] | null;
  availability_zones: string[] | null;
  instance_types: string[] | null;
  reservation: string | null;
  spot_policy: SpotPolicy | null;
  retry: ProfileRetry | boolean | null;
  /** Seconds, `"off"`, or null for the default. */
  max_duration: 'off' | number | null;
  stop_duration: 'off' | number | null;
  max_price: number | null;
  creation_policy: CreationPolicy | null;
  /** Seconds; -1 is off. */
  idle_duration: number | null;
  utilization_policy: UtilizationPolicy | null;
  startup_order: StartupOrder | null;
  stop_criteria: StopCriteria | null;
  schedule: Schedule | null;
  /** Objects on the wire; plain strings only in responses patched for old clients. */
  fleets: (EntityReference | string)[] | null;
  instances: InstanceSelector[] | null;
  tags: Record<string, string> | null;
  backend_options: Record<string, unknown>[] | null;
}

export interface Profile extends ProfileParams {
  name: string;
  default: boolean;
}

export interface RegistryAuth {
  username: string;
  password: string;
}

export type MountPoint =
  | { name: string | string[]; path: string }
  | { instance_path: string; path: string; optional: boolean };

export interface RepoSpec {
  local_path: string | null;
  url: string | null;
  branch: string | null;
  hash: string | null;
  path: string;
  if_exists: 'error' | 'skip';
}

export interface FilePathMapping {
  local_path: string;
  path: string;
}

export type PythonVersion = '3.9' | '3.10' | '3.11' | '3.12' | '3.13' | '3.14';

/** Fields every run configuration has, besides the profile parameters. */
export interface BaseRunConfiguration extends ProfileParams {
  name: string | null;
  image: string | null;
  user: string | null;
  privileged: boolean;
  entrypoint: string | null;
  working_dir: string | null;
  /** Deprecated; has no effect. */
  home_dir: string;
  registry_auth: RegistryAuth | null;
  python: PythonVersion | null;
  nvcc: boolean | null;
  single_branch: boolean | null;
  env: Env;
  shell: string | null;
  resources: ResourcesSpec;
  priority: number | null;
  volumes: MountPoint[];
  docker: boolean | null;
  repos: RepoSpec[];
  files: FilePathMapping[];
  dstack: boolean;
  /** Deprecated; runs before `init` in dev environments only. */
  setup: string[];
}

export interface NodeGroup {
  name: string | null;
  nodes: number;
  resources: ResourcesSpec;
  commands: string[];
  ports: PortMapping[];
}

export interface TaskConfiguration extends BaseRunConfiguration {
  type: 'task';
  commands: string[];
  ports: PortMapping[];
  nodes: number | null;
  groups: NodeGroup[] | null;
}

export interface DevEnvironmentConfiguration extends BaseRunConfiguration {
  type: 'dev-environment';
  ports: PortMapping[];
  ide: 'vscode' | 'cursor' | 'windsurf' | 'zed' | null;
  version: string | null;
  init: string[];
  /** Seconds; null is off. */
  inactivity_duration: number | null;
}

export interface ScalingSpec {
  metric: 'rps';
  target: number;
  window: number | null;
  scale_up_delay: number;
  scale_down_delay: number;
}

export interface RateLimit {
  prefix: string;
  key: { type: 'ip_address' } | { type: 'header'; header: string };
  rps: number;
  burst: number;
}

export interface ProbeConfig {
  type: 'http';
  url: string | null;
  method: 'get' | 'post' | 'put' | 'delete' | 'patch' | 'head' | null;
  headers: { name: string; value: string }[];
  body: string | null;
  timeout: number | null;
  interval: number | null;
  ready_after: number | null;
  until_ready: boolean | null;
}

export type ServiceModel =
  | { type: 'chat'; name: string; format: 'openai'; prefix: string }
  | {
      type: 'chat';
      name: string;
      format: 'tgi';
      chat_template: string | null;
      eos_token: string | null;
    };

/** A replica group as serialized: its replica range is written under `count`. */
export interface ReplicaGroup {
  name: string | null;
  count: Range;
  scaling: ScalingSpec | null;
  resources: ResourcesSpec;
  spot_policy: SpotPolicy | null;
  reservation: string | null;
  commands: string[];
  image: string | null;
  python: PythonVersion | null;
  nvcc: boolean | null;
  docker: boolean | null;
  privileged: boolean | null;
  router: { type: 'sglang' | 'dynamo' } | null;
}

/**
 * A service as serialized. With replica groups, `replicas` holds the list of groups (the
 * original's legacy shape); otherwise it is the replica range or null.
 */
export interface ServiceConfiguration extends BaseRunConfiguration {
  type: 'service';
  commands: string[];
  port: PortMapping;
  gateway: boolean | EntityReference | string | null;
  strip_prefix: boolean;
  model: ServiceModel | null;
  https: boolean | 'auto' | null;
  auth: boolean;
  scaling: ScalingSpec | null;
  rate_limits: RateLimit[];
  probes: ProbeConfig[] | null;
  replicas: Range | ReplicaGroup[] | null;
}

export type RunConfiguration =
  | TaskConfiguration
  | ServiceConfiguration
  | DevEnvironmentConfiguration;

export type RunRepoData =
  | {
      repo_type: 'remote';
      repo_name: string;
      repo_branch: string | null;
      repo_hash: string | null;
      repo_config_name: string | null;
      repo_config_email: string | null;
    }
  | { repo_type: 'local'; repo_dir: string }
  | { repo_type: 'virtual' };

export interface FileArchiveMapping {
  id: string;
  path: string;
}

/** A run spec as `parseRunSpec` returns it (named apart from the looser wire `RunSpec`). */
export interface ParsedRunSpec {
  run_name: string | null;
  repo_id: string | null;
  repo_data: RunRepoData | null;
  repo_code_hash: string | null;
  repo_dir: string | null;
  file_archives: FileArchiveMapping[];
  /** Sent by old clients; ignored. */
  working_dir: string | null;
  configuration_path: string | null;
  configuration: RunConfiguration;
  profile: Profile | null;
  ssh_key_pub: string | null;
}

export interface SshKey {
  public: string;
  private: string | null;
}

export interface SshProxyParams {
  hostname: string;
  port: number | null;
  user: string;
  identity_file: string;
  ssh_key: SshKey | null;
}

export interface SshHostParams {
  hostname: string;
  port: number | null;
  user: string | null;
  identity_file: string | null;
  proxy_jump: SshProxyParams | null;
  internal_ip: string | null;
  ssh_key: SshKey | null;
  blocks: number | 'auto' | null;
}

export interface SshParams {
  user: string | null;
  port: number | null;
  identity_file: string | null;
  ssh_key: SshKey | null;
  proxy_jump: SshProxyParams | null;
  hosts: (SshHostParams | string)[];
  network: string | null;
}

/** `target` is left out of the serialized object when it equals `min`. */
export interface FleetNodes {
  min: number;
  target?: number;
  max: number | null;
}

/** One model for cloud fleets (`nodes` set) and SSH fleets (`ssh_config` set). */
export interface FleetConfiguration {
  type: 'fleet';
  name: string | null;
  placement: 'any' | 'cluster' | null;
  blocks: number | 'auto';
  nodes: FleetNodes | null;
  reservation: string | null;
  resources: ResourcesSpec | null;
  backends: BackendType[] | null;
  regions: string[] | null;
  availability_zones: string[] | null;
  instance_types: string[] | null;
  spot_policy: SpotPolicy | null;
  retry: ProfileRetry | boolean | null;
  max_price: number | null;
  idle_duration: number | null;
  tags: Record<string, string> | null;
  backend_options: Record<string, unknown>[] | null;
  ssh_config: SshParams | null;
  env: Env;
}

/** A fleet spec as `parseFleetSpec` returns it (named apart from the wire `FleetSpec`). */
export interface ParsedFleetSpec {
  configuration: FleetConfiguration;
  configuration_path: string | null;
  profile: Profile;
  /** Deprecated; accepted from old clients. */
  autocreated: boolean;
}
