import type { InstanceOffer, JobProvisioningData, Requirements } from '../domain/resources.js';
import type {
  AgentJob,
  AgentJobState,
  AgentPull,
  BackendProvider,
  InstanceAgent,
} from '../ports/backend-provider.js';
import type { LogEvent } from '../ports/log-store.js';

/** A job as the fake agent keeps it. */
export interface FakeJob {
  job: AgentJob;
  events: LogEvent[];
  state: AgentJobState;
  stopRequests: { force: boolean }[];
  ignoresSigterm: boolean;
  /** Set by `remove`; the job stays in `jobs` so tests can look at it. */
  removed: boolean;
}

/**
 * A fast in-process backend for scheduler tests. Commands are a tiny script language:
 * `echo <text>` logs a line, `exit <n>` ends the job with that status, `sleep` keeps it
 * running until stopped, `trap` makes it ignore SIGTERM.
 */
export interface FakeBackend {
  provider: BackendProvider;
  jobs: Map<string, FakeJob>;
  created: string[];
  terminated: string[];
  /** Makes the next pulls throw (an unreachable instance). */
  unreachable: boolean;
}

const offerOf = (name: string, price: number, cpus: number): InstanceOffer => ({
  backend: 'fake',
  instance: {
    name,
    resources: {
      cpus,
      memory_mib: 8192,
      gpus: [],
      spot: false,
      disk: { size_mib: 102400 },
      cpu_arch: 'x86',
      description: '',
    },
  },
  region: 'here',
  price,
  backend_data: {},
  availability: 'available',
  availability_zones: null,
  instance_runtime: 'runner',
  blocks: 1,
  total_blocks: 1,
});

function fits(offer: InstanceOffer, requirements: Requirements): boolean {
  const cpu = requirements.resources.cpu.count;
  const gpu = requirements.resources.gpu.count;
  const cpus = offer.instance.resources.cpus;

  return (cpu.min === null || cpus >= cpu.min) && (cpu.max === null || cpus <= cpu.max) &&
    (gpu.min === null || gpu.min === 0);
}

/**
 * Creates a fake backend of type `fake` with two offers (2 and 4 CPUs, the cheaper first),
 * for scheduler tests and benchmarks that need a backend without processes.
 */
export function createFakeBackend(): FakeBackend {
  const backend: FakeBackend = {
    jobs: new Map(),
    created: [],
    terminated: [],
    unreachable: false,
    provider: undefined as never,
  };
  let clock = Date.now();
  const tick = (): number => {
    clock = Math.max(clock + 1, Date.now());
    return clock;
  };

  const agent: InstanceAgent = {
    async healthcheck() {},
    async submit(job) {
      if (backend.jobs.has(job.jobSubmissionId)) {
        return;
      }

      const fake: FakeJob = {
        job,
        events: [],
        state: { status: 'running', exitStatus: null, terminationReason: null, message: null },
        stopRequests: [],
        ignoresSigterm: false,
        removed: false,
      };
      backend.jobs.set(job.jobSubmissionId, fake);
      let ended = false;

      for (const line of job.commands) {
        const [word, ...rest] = line.split(' ');
        const text = rest.join(' ').replace(/\$(\w+)/g, (_m, name: string) => job.env[name] ?? '');

        if (word === 'echo') {
          fake.events.push({ timestamp: tick(), logSource: 'stdout', message: `${text}\n` });
        } else if (word === 'trap') {
          fake.ignoresSigterm = true;
        } else if (word === 'sleep') {
          return;
        } else if (word === 'exit') {
          const code = Number(rest[0]);
          fake.state = code === 0
            ? { status: 'done', exitStatus: 0, terminationReason: null, message: null }
            : { status: 'failed', exitStatus: code, terminationReason: null, message: null };
          ended = true;
          break;
        }
      }

      if (!ended) {
        fake.state = { status: 'done', exitStatus: 0, terminationReason: null, message: null };
      }
    },
    async pull(id, cursor): Promise<AgentPull> {
      if (backend.unreachable) {
        throw new Error('connection refused');
      }

      const fake = backend.jobs.get(id);

      if (fake === undefined) {
        return { state: null, jobLogs: [], runnerLogs: [], cursor, hasMore: false };
      }

      const newer = fake.events.filter((event) => event.timestamp > cursor);
      const page = newer.slice(0, 2);
      const last = page[page.length - 1];

      return {
        state: fake.state,
        jobLogs: page,
        runnerLogs: [],
        cursor: last?.timestamp ?? cursor,
        hasMore: newer.length > page.length,
      };
    },
    async stop(id, options) {
      const fake = backend.jobs.get(id);

      if (fake === undefined || fake.state.status !== 'running') {
        return;
      }

      fake.stopRequests.push(options);

      if (options.force || !fake.ignoresSigterm) {
        fake.state = { status: 'terminated', exitStatus: options.force ? 137 : 143,
          terminationReason: null, message: null };
      }
    },
    async remove(id) {
      const fake = backend.jobs.get(id);

      if (fake === undefined) {
        return;
      }

      if (fake.state.status === 'running') {
        fake.state = { status: 'terminated', exitStatus: 137, terminationReason: null,
          message: null };
      }

      fake.removed = true;
    },
  };

  const provider: BackendProvider = {
    type: 'fake',
    capabilities: { images: false, multinode: true },
    async getOffers({ requirements }) {
      const offers = [offerOf('small', 0.5, 2), offerOf('large', 1, 4)];
      return offers.filter((offer) => fits(offer, requirements));
    },
    async createInstance({ offer, instanceId }): Promise<JobProvisioningData> {
      backend.created.push(instanceId);
      return {
        backend: 'fake',
        base_backend: null,
        instance_type: offer.instance,
        instance_id: instanceId,
        hostname: '127.0.0.1',
        internal_ip: `10.0.0.${backend.created.length}`,
        public_ip_enabled: false,
        instance_network: null,
        region: offer.region,
        availability_zone: null,
        reservation: null,
        price: offer.price,
        username: 'me',
        ssh_port: null,
        dockerized: false,
        ssh_proxy: null,
        backend_data: null,
        gpu_driver: null,
      };
    },
    async terminateInstance({ provisioningData }) {
      backend.terminated.push(provisioningData.instance_id);
    },
    agent: () => agent,
  };

  backend.provider = provider;
  return backend;
}
