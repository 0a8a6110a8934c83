import { randomUUID } from 'node:crypto';
import { appendFile, link, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type {
  AgentJob,
  AgentJobState,
  AgentPull,
  BackendProvider,
  InstanceAgent,
  InstanceOffer,
  JobProvisioningData,
  LogEvent,
  Logger,
} from '@dstack/core';

/**
 * A backend plugin for the replica tests, loaded by the real bin through
 * DSTACK_SERVER_BACKEND_PLUGINS. Offers and instances are instant; a job "runs" for a fixed
 * time. Everything lives in files of one shared directory, so any replica can follow a job
 * another one started, and every call leaves one O_APPEND line in `events.jsonl`.
 */

/** One line of `events.jsonl`. */
export interface FastBackendEvent {
  event: 'create' | 'terminate' | 'submit' | 'start' | 'stop' | 'remove';
  /** The instance id (create, terminate) or the job submission id (the rest). */
  id: string;
  runName?: string;
  pid: number;
  at: number;
}

interface JobFile {
  startedAt: number;
  /** The process that started the job. */
  startedBy: number;
  runName: string;
  durationMillis: number;
  lines: number;
}

interface StopFile {
  at: number;
  force: boolean;
}

/** Log lines a job prints, spread over its run time. */
const jobLines = 3;

/** The shared directory: DSTACK_TEST_FAST_BACKEND_DIR, else one under the server dir. */
function stateDirOf(serverDir: string): string {
  return process.env.DSTACK_TEST_FAST_BACKEND_DIR ?? join(serverDir, 'fast-backend');
}

/** The text of job line `num` (1-based) of a run, as the test expects it back. */
export function fastJobLine(runName: string, num: number): string {
  return `line ${num} of ${runName}\n`;
}

function offerOf(): InstanceOffer {
  return {
    backend: 'fast',
    instance: {
      name: 'fast-64cpu',
      resources: {
        cpus: 64,
        memory_mib: 262_144,
        gpus: [],
        spot: false,
        disk: { size_mib: 1_048_576 },
        cpu_arch: 'x86',
        description: '',
      },
    },
    region: 'fast',
    price: 0.5,
    backend_data: {},
    availability: 'available',
    availability_zones: null,
    instance_runtime: 'runner',
    blocks: 1,
    total_blocks: 1,
  };
}

async function readJson<T>(path: string): Promise<T | null> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      return null;
    }

    throw error;
  }
}

/** Every event of a job file, in timestamp order: runner start, job lines, runner end. */
function eventsOf(job: JobFile): { event: LogEvent; producer: 'job' | 'runner' }[] {
  const end = job.startedAt + job.durationMillis;
  const events: { event: LogEvent; producer: 'job' | 'runner' }[] = [
    {
      producer: 'runner',
      event: { timestamp: job.startedAt, logSource: 'stdout', message: 'fast: job started\n' },
    },
  ];

  for (let num = 1; num <= job.lines; num += 1) {
    const timestamp = job.startedAt + Math.floor((num * job.durationMillis) / (job.lines + 1));
    events.push({
      producer: 'job',
      event: { timestamp, logSource: 'stdout', message: fastJobLine(job.runName, num) },
    });
  }

  events.push({
    producer: 'runner',
    event: { timestamp: end, logSource: 'stdout', message: 'fast: job done\n' },
  });
  return events;
}

/**
 * Creates a file with its whole text, atomically and only if it does not exist yet (link()
 * refuses an existing name), so a reader in another process never sees half of it.
 */
async function createOnce(path: string, text: string): Promise<boolean> {
  const draft = `${path}.${process.pid}.${randomUUID()}`;
  await writeFile(draft, text);

  try {
    await link(draft, path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
      return false;
    }

    throw error;
  } finally {
    await rm(draft, { force: true });
  }
}

/** Whether a process of this machine is alive (signal 0 checks without sending one). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const sleep = (millis: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, millis));

interface FastTimings {
  /** How long a job runs. */
  durationMillis: number;
  /** How long each agent call takes, as a round trip to a real instance would. */
  callMillis: number;
}

function createFastAgent(dir: string, record: (line: FastBackendEvent) => Promise<void>,
  timings: FastTimings): InstanceAgent {
  const { durationMillis, callMillis } = timings;
  const jobPath = (id: string): string => join(dir, 'jobs', `${id}.json`);
  const stopPath = (id: string): string => join(dir, 'jobs', `${id}.stop`);
  const running: AgentJobState = {
    status: 'running', exitStatus: null, terminationReason: null, message: null,
  };

  /**
   * A replica killed between starting a job and recording it leaves a started job with no
   * `start` line; the replica that submits it again records it for the dead one, once.
   */
  const recordOrphanedStart = async (id: string): Promise<void> => {
    const started = await readJson<JobFile>(jobPath(id));

    if (started === null || isAlive(started.startedBy)) {
      return;
    }

    const marker = join(dir, 'jobs', `${id}.start-recorded`);
    const lines = (await readFile(join(dir, 'events.jsonl'), 'utf8')).split('\n');
    const recorded = lines.some((line) => line.includes('"event":"start"') &&
      line.includes(`"id":"${id}"`));

    if (!recorded && (await createOnce(marker, ''))) {
      await record({ event: 'start', id, runName: started.runName, pid: started.startedBy,
        at: started.startedAt });
    }
  };

  return {
    async healthcheck() {
      await mkdir(join(dir, 'jobs'), { recursive: true });
    },

    async submit(job: AgentJob) {
      await sleep(callMillis);
      const now = Date.now();
      await record({ event: 'submit', id: job.jobSubmissionId, runName: job.runName,
        pid: process.pid, at: now });
      // A run may ask for its own duration, e.g. a long one to stop.
      const asked = Number(job.env.FAST_JOB_MILLIS);
      const file: JobFile = { startedAt: now, startedBy: process.pid, runName: job.runName,
        durationMillis: Number.isFinite(asked) && asked > 0 ? asked : durationMillis,
        lines: jobLines };

      // Of all replicas that submit one id, exactly one starts the job.
      if (!(await createOnce(jobPath(job.jobSubmissionId), JSON.stringify(file)))) {
        await recordOrphanedStart(job.jobSubmissionId);
        return;
      }

      await record({ event: 'start', id: job.jobSubmissionId, runName: job.runName,
        pid: process.pid, at: now });
    },

    async pull(jobSubmissionId: string, cursor: number): Promise<AgentPull> {
      await sleep(callMillis);
      const job = await readJson<JobFile>(jobPath(jobSubmissionId));

      if (job === null) {
        return { state: null, jobLogs: [], runnerLogs: [], cursor, hasMore: false };
      }

      const stop = await readJson<StopFile>(stopPath(jobSubmissionId));
      const end = job.startedAt + job.durationMillis;
      const until = Math.min(Date.now(), stop?.at ?? Infinity);
      const visible = eventsOf(job).filter(({ event }) =>
        event.timestamp > cursor && event.timestamp <= until);
      let state = running;

      if (stop !== null && stop.at < end) {
        state = { status: 'terminated', exitStatus: stop.force ? 137 : 143,
          terminationReason: 'terminated_by_user', message: 'stopped' };
      } else if (Date.now() >= end) {
        state = { status: 'done', exitStatus: 0, terminationReason: 'done_by_runner',
          message: null };
      }

      return {
        state,
        jobLogs: visible.filter((item) => item.producer === 'job').map((item) => item.event),
        runnerLogs: visible.filter((item) => item.producer === 'runner').map((item) => item.event),
        cursor: visible.at(-1)?.event.timestamp ?? cursor,
        hasMore: false,
      };
    },

    async stop(jobSubmissionId: string, options: { force: boolean }) {
      const at = Date.now();
      await record({ event: 'stop', id: jobSubmissionId, pid: process.pid, at });
      const stop: StopFile = { at, force: options.force };
      await createOnce(stopPath(jobSubmissionId), JSON.stringify(stop));
    },

    async remove(jobSubmissionId: string) {
      await record({ event: 'remove', id: jobSubmissionId, pid: process.pid, at: Date.now() });
      await rm(jobPath(jobSubmissionId), { force: true });
      await rm(stopPath(jobSubmissionId), { force: true });
    },
  };
}

/** The plugin entry the bin calls: the `fast` backend over the shared directory. */
export function createBackendProvider(options: {
  serverDir: string;
  logger: Logger;
}): BackendProvider {
  const dir = stateDirOf(options.serverDir);
  const timings: FastTimings = {
    durationMillis: Number(process.env.DSTACK_TEST_FAST_BACKEND_JOB_MILLIS ?? '500'),
    callMillis: Number(process.env.DSTACK_TEST_FAST_BACKEND_CALL_MILLIS ?? '0'),
  };
  const createMillis = Number(process.env.DSTACK_TEST_FAST_BACKEND_CREATE_MILLIS ?? '0');
  const record = (line: FastBackendEvent): Promise<void> =>
    appendFile(join(dir, 'events.jsonl'), `${JSON.stringify(line)}\n`, { flag: 'a' });

  return {
    type: 'fast',
    capabilities: { images: false, multinode: false },
    configSchema: {
      type: 'object',
      properties: { type: { const: 'fast' } },
      required: ['type'],
      additionalProperties: false,
    },

    async getOffers() {
      return [offerOf()];
    },

    async createInstance(request): Promise<JobProvisioningData> {
      await mkdir(join(dir, 'jobs'), { recursive: true });
      await record({ event: 'create', id: request.instanceId, pid: process.pid,
        at: Date.now() });
      // The instance exists from here on; the call returns only after the cloud's latency.
      await sleep(createMillis);
      options.logger.info({ instance: request.instanceName }, 'fast instance created');

      return {
        backend: 'fast',
        base_backend: null,
        instance_type: request.offer.instance,
        instance_id: request.instanceId,
        hostname: '127.0.0.1',
        internal_ip: '127.0.0.1',
        public_ip_enabled: false,
        instance_network: null,
        region: 'fast',
        availability_zone: null,
        reservation: null,
        price: request.offer.price,
        username: 'fast',
        ssh_port: null,
        dockerized: false,
        ssh_proxy: null,
        backend_data: null,
        gpu_driver: null,
      };
    },

    async terminateInstance(request) {
      await record({ event: 'terminate', id: request.provisioningData.instance_id,
        pid: process.pid, at: Date.now() });
    },

    agent() {
      return createFastAgent(dir, record, timings);
    },
  };
}
