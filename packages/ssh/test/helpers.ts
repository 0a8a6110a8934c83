import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import {
  createCipher,
  createMemoryLogStore,
  createMemoryStateStore,
  defaultPermissions,
  silentLogger,
} from '@dstack/core';
import type {
  AgentJob,
  AgentPull,
  BackendProvider,
  CoreContext,
  InstanceAgent,
  LogEvent,
  RemoteHost,
} from '@dstack/core';
import type { KeyPair, SshdHost } from './sshd-harness.js';

/** The fleet host description the scheduler would pass for a test sshd. */
export function remoteHostFor(
  host: SshdHost,
  userKey: KeyPair,
  projectKey: KeyPair,
  extra: Partial<RemoteHost> = {},
): RemoteHost {
  return {
    hostname: host.address,
    port: host.port,
    user: 'root',
    privateKey: userKey.privateKey,
    proxyJump: null,
    internalIp: null,
    blocks: 'auto',
    env: {},
    projectPublicKey: projectKey.publicKey,
    projectPrivateKey: projectKey.privateKey,
    ...extra,
  };
}

export function agentJob(commands: string[], extra: Partial<AgentJob> = {}): AgentJob {
  return {
    jobSubmissionId: randomUUID(),
    projectName: 'main',
    runName: 'ssh-test',
    jobName: 'ssh-test-0-0',
    commands,
    shell: null,
    env: {},
    workingDir: null,
    maxDurationSeconds: null,
    ...extra,
  };
}

export interface Pulled {
  state: AgentPull['state'];
  jobLogs: LogEvent[];
  runnerLogs: LogEvent[];
  cursor: number;
}

/** Pulls from `cursor` until `done` says so, as the scheduler would. */
export async function pullUntil(
  agent: InstanceAgent,
  id: string,
  done: (pulled: Pulled) => boolean,
  options: { cursor?: number; timeoutMillis?: number } = {},
): Promise<Pulled> {
  const pulled: Pulled = { state: null, jobLogs: [], runnerLogs: [], cursor: options.cursor ?? 0 };
  const deadline = Date.now() + (options.timeoutMillis ?? 20_000);
  while (Date.now() < deadline) {
    const page = await agent.pull(id, pulled.cursor);
    pulled.state = page.state;
    pulled.jobLogs.push(...page.jobLogs);
    pulled.runnerLogs.push(...page.runnerLogs);
    pulled.cursor = page.cursor;
    if (!page.hasMore && done(pulled)) {
      return pulled;
    }

    if (!page.hasMore) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  throw new Error(`job ${id} did not get there in time`);
}

export function untilFinished(
  agent: InstanceAgent,
  id: string,
  options: { cursor?: number; timeoutMillis?: number } = {},
): Promise<Pulled> {
  return pullUntil(agent, id, (p) => p.state !== null && p.state.status !== 'running', options);
}

export function text(events: LogEvent[], source?: 'stdout' | 'stderr'): string {
  return events
    .filter((event) => source === undefined || event.logSource === source)
    .map((event) => event.message)
    .join('');
}

/** Whether a process exists and is not a zombie waiting to be reaped. */
export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');

    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** A core context on a memory store with these backend providers, for scheduler tests. */
export function schedulerContext(providers: Map<string, BackendProvider>): CoreContext {
  return {
    store: createMemoryStateStore(),
    logs: createMemoryLogStore(),
    cipher: createCipher(),
    providers,
    logger: silentLogger,
    settings: {
      serverDir: '/nonexistent',
      serverVersion: null,
      defaultPermissions: { ...defaultPermissions },
      userProjectQuota: 10,
    },
    now: Date.now,
  };
}
