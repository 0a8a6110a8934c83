import { readFile } from 'node:fs/promises';
import { request } from 'undici';
import type { Dispatcher } from 'undici';
import { parse as parseYaml } from 'yaml';
import { DstackApiError } from './dstack-api-error.js';
import { followLogs } from './follow-logs.js';
import { resolveFleetSshKeys } from './ssh-keys.js';
import type { LogLine, LogsOptions } from './follow-logs.js';
import { finishedRunStatuses } from './wire-types.js';
import type {
  Fleet,
  FleetPlan,
  FleetSpec,
  Run,
  RunPlan,
  RunSpec,
  RunStatus,
} from './wire-types.js';

export interface ClientOptions {
  /** The server, e.g. `http://127.0.0.1:3000`. */
  url: string;
  /** A user's API token. */
  token: string;
  /** The project runs and fleets go to (default `main`). */
  projectName?: string;
  /** An undici dispatcher (a Pool or an Agent) to send requests through. */
  dispatcher?: Dispatcher;
  /** Per-request timeout (default 30 s). */
  requestTimeoutMillis?: number;
}

/** How a configuration is applied; the defaults match what the CLI sends for a plain run. */
export interface ApplyOptions {
  /** Overrides `name` of the configuration. */
  name?: string;
  /** Sent as `configuration_path`; a file source uses its path by default. */
  configurationPath?: string;
  profile?: Record<string, unknown> | null;
  /** A repo registered with the server; without one the run has a virtual repo. */
  repoId?: string;
  repoData?: Record<string, unknown>;
  /** Applies even if the run or fleet changed since the plan. */
  force?: boolean;
}

export type ApplyResult = { kind: 'run'; run: Run } | { kind: 'fleet'; fleet: Fleet };

export interface WaitOptions {
  /** Statuses to wait for (default: the finished ones), or a test of the run. */
  until?: readonly RunStatus[] | ((run: Run) => boolean);
  timeoutMillis?: number;
  intervalMillis?: number;
}

/** A typed client of the dstack HTTP API for applying configurations and following runs. */
export interface DstackClient {
  readonly projectName: string;
  /** POSTs a JSON body to an API path and returns the parsed answer; errors throw. */
  request<T>(path: string, body?: unknown): Promise<T>;
  /** Applies a run or fleet configuration: a path to a YAML file, or the parsed object. */
  apply(source: string | Record<string, unknown>, options?: ApplyOptions): Promise<ApplyResult>;
  getRunPlan(configuration: Record<string, unknown>, options?: ApplyOptions): Promise<RunPlan>;
  applyRun(configuration: Record<string, unknown>, options?: ApplyOptions): Promise<Run>;
  applyFleet(configuration: Record<string, unknown>, options?: ApplyOptions): Promise<Fleet>;
  getRun(runName: string): Promise<Run>;
  /** Polls a run until it reaches one of the statuses; rejects on timeout. */
  waitForRun(runName: string, options?: WaitOptions): Promise<Run>;
  /** A job's log lines as they come, decoded from base64. */
  logs(runName: string, options?: LogsOptions): AsyncIterable<LogLine>;
  stopRuns(runNames: string[], options?: { abort?: boolean }): Promise<void>;
  deleteRuns(runNames: string[]): Promise<void>;
  deleteFleets(names: string[]): Promise<void>;
}

/** Loads a configuration from a YAML file, as `dstack apply -f` does. */
export async function loadConfiguration(path: string): Promise<Record<string, unknown>> {
  const parsed: unknown = parseYaml(await readFile(path, 'utf8'));

  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new Error(`${path} does not hold a configuration (a YAML mapping)`);
  }

  return parsed as Record<string, unknown>;
}

/** The run spec the CLI sends for a configuration. */
export function buildRunSpec(
  configuration: Record<string, unknown>,
  options: ApplyOptions = {},
): RunSpec {
  const name = options.name ?? configuration.name;
  const spec: RunSpec = {
    run_name: typeof name === 'string' ? name : null,
    configuration: options.name === undefined ? configuration : { ...configuration, name },
    configuration_path: options.configurationPath ?? null,
    profile: options.profile ?? null,
  };

  if (options.repoId !== undefined) {
    spec.repo_id = options.repoId;
    spec.repo_data = options.repoData ?? null;
  }

  return spec;
}

/** Creates a client. It holds no connection of its own beyond undici's pool. */
export function createClient(options: ClientOptions): DstackClient {
  const projectName = options.projectName ?? 'main';
  const base = options.url.endsWith('/') ? options.url : `${options.url}/`;
  const timeoutMillis = options.requestTimeoutMillis ?? 30_000;
  const project = (path: string): string =>
    `/api/project/${encodeURIComponent(projectName)}/${path}`;

  async function post<T>(path: string, body?: unknown): Promise<T> {
    const response = await request(new URL(path.replace(/^\//, ''), base), {
      method: 'POST',
      headers: {
        authorization: `Bearer ${options.token}`,
        'content-type': 'application/json',
        accept: 'application/json',
      },
      body: JSON.stringify(body ?? {}),
      dispatcher: options.dispatcher,
      headersTimeout: timeoutMillis,
      bodyTimeout: timeoutMillis,
    });
    const text = await response.body.text();
    let parsed: unknown = null;

    if (text !== '') {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
    }

    if (response.statusCode >= 400) {
      throw new DstackApiError(response.statusCode, parsed, path);
    }

    return parsed as T;
  }

  function getRunPlan(
    configuration: Record<string, unknown>,
    applyOptions: ApplyOptions = {},
  ): Promise<RunPlan> {
    return post<RunPlan>(project('runs/get_plan'), {
      run_spec: buildRunSpec(configuration, applyOptions),
    });
  }

  async function applyRun(
    configuration: Record<string, unknown>,
    applyOptions: ApplyOptions = {},
  ): Promise<Run> {
    const plan = await getRunPlan(configuration, applyOptions);

    return post<Run>(project('runs/apply'), {
      plan: { run_spec: plan.run_spec, current_resource: plan.current_resource ?? null },
      force: applyOptions.force ?? false,
    });
  }

  async function applyFleet(
    configuration: Record<string, unknown>,
    applyOptions: ApplyOptions = {},
  ): Promise<Fleet> {
    const name = applyOptions.name ?? configuration.name;
    const withKeys = await resolveFleetSshKeys(configuration);
    const spec: FleetSpec = {
      configuration: name === undefined ? withKeys : { ...withKeys, name },
      configuration_path: applyOptions.configurationPath ?? null,
      profile: applyOptions.profile ?? null,
    };
    const plan = await post<FleetPlan>(project('fleets/get_plan'), { spec });

    return post<Fleet>(project('fleets/apply'), {
      plan: { spec: plan.spec, current_resource: plan.current_resource ?? null },
      force: applyOptions.force ?? false,
    });
  }

  async function apply(
    source: string | Record<string, unknown>,
    applyOptions: ApplyOptions = {},
  ): Promise<ApplyResult> {
    const configuration = typeof source === 'string' ? await loadConfiguration(source) : source;
    const withPath = typeof source === 'string' && applyOptions.configurationPath === undefined
      ? { ...applyOptions, configurationPath: source }
      : applyOptions;

    if (configuration.type === 'fleet') {
      return { kind: 'fleet', fleet: await applyFleet(configuration, withPath) };
    }

    return { kind: 'run', run: await applyRun(configuration, withPath) };
  }

  function getRun(runName: string): Promise<Run> {
    return post<Run>(project('runs/get'), { run_name: runName });
  }

  async function waitForRun(runName: string, waitOptions: WaitOptions = {}): Promise<Run> {
    const until = waitOptions.until ?? finishedRunStatuses;
    const test = typeof until === 'function'
      ? until
      : (run: Run): boolean => until.includes(run.status);
    const deadline = Date.now() + (waitOptions.timeoutMillis ?? 10 * 60_000);
    const intervalMillis = waitOptions.intervalMillis ?? 1000;

    for (;;) {
      const run = await getRun(runName);

      if (test(run)) {
        return run;
      }

      if (Date.now() + intervalMillis > deadline) {
        throw new Error(`run ${runName} is still ${run.status} after the timeout`);
      }

      await sleep(intervalMillis);
    }
  }

  async function stopRuns(runNames: string[], stopOptions: { abort?: boolean } = {}) {
    await post(project('runs/stop'), { runs_names: runNames, abort: stopOptions.abort ?? false });
  }

  async function deleteRuns(runNames: string[]): Promise<void> {
    await post(project('runs/delete'), { runs_names: runNames });
  }

  async function deleteFleets(names: string[]): Promise<void> {
    await post(project('fleets/delete'), { names });
  }

  return {
    projectName,
    request: post,
    apply,
    getRunPlan,
    applyRun,
    applyFleet,
    getRun,
    waitForRun,
    logs: (runName, logsOptions = {}) => followLogs({
      runName,
      getRun,
      poll: (body) => post(project('logs/poll'), body),
      options: logsOptions,
    }),
    stopRuns,
    deleteRuns,
    deleteFleets,
  };
}

function sleep(millis: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, millis));
}
