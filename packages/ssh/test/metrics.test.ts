import { spawn } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InstanceAgent } from '@dstack/core';
import { createSshBackendProvider, runnerScript } from '../src/index.js';
import type { SshBackendProvider } from '../src/index.js';
import { remoteHostFor } from './helpers.js';
import { generateKeyPair, startSshd } from './sshd-harness.js';
import type { SshdHost } from './sshd-harness.js';

async function until<T>(check: () => Promise<T | null | undefined>): Promise<T> {
  const deadline = Date.now() + 30_000;

  for (;;) {
    const value = await check();

    if (value !== null && value !== undefined) {
      return value;
    }

    if (Date.now() > deadline) {
      throw new Error('timed out waiting');
    }

    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('job metrics over SSH', () => {
  let host: SshdHost;
  let provider: SshBackendProvider;
  let agent: InstanceAgent;
  const userKey = generateKeyPair('user@laptop');

  beforeAll(async () => {
    const projectKey = generateKeyPair('dstack-project');
    host = await startSshd({ address: '127.0.0.21', authorizedKeys: [userKey.publicKey] });
    provider = createSshBackendProvider({ connectTimeoutMillis: 5000 });
    const provisioned = await provider.provisionHost(remoteHostFor(host, userKey, projectKey),
      { timeoutMillis: 30_000 });
    agent = provider.agent(provisioned.provisioningData);
  }, 60_000);

  afterAll(async () => {
    await provider?.close();
    await host?.stop();
  });

  // A busy job's CPU time and memory on the host: the BackendProvider contract checks them.
  it('answers null for a job the host does not know', async () => {
    expect(await agent.metrics!('never-submitted')).toBeNull();
  });
});

describe("the host runner's GPU sample", () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ssh-runner-gpu-'));
    await writeFile(join(dir, 'runner.py'), runnerScript, { mode: 0o700 });
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  function runner(args: string[], options: { stdin?: string; path?: string } = {}) {
    const env = { ...process.env, PATH: options.path ?? process.env.PATH };
    const child = spawn('python3', [join(dir, 'runner.py'), ...args], {
      stdio: ['pipe', 'pipe', 'inherit'],
      env,
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stdin.end(options.stdin ?? '');
    return new Promise<Record<string, unknown>>((resolve) => {
      child.once('exit', () => {
        resolve(JSON.parse(output.slice(output.indexOf('@@dstack-runner@@') + 17)));
      });
    });
  }

  it("reports each GPU's utilization and the memory the job's processes hold", async () => {
    const id = 'gpu-job';
    await runner(['submit', id], { stdin: JSON.stringify({ commands: ['sleep 60'], env: {} }) });
    const pgid = await until(async () => {
      const text = await readFile(join(dir, 'jobs', id, 'state.json'), 'utf8').catch(() => '');
      return text === '' ? null : (JSON.parse(text) as { pgid?: number }).pgid;
    });
    await writeFile(join(dir, 'nvidia-smi'), [
      '#!/bin/sh',
      'case "$1" in',
      "  --query-gpu=*) printf 'GPU-aaaa, 37\\nGPU-bbbb, 0\\n' ;;",
      `  --query-compute-apps=*) printf '${pgid}, GPU-bbbb, 300\\n1, GPU-aaaa, 100\\n' ;;`,
      '  *) exit 2 ;;',
      'esac',
      '',
    ].join('\n'));
    await chmod(join(dir, 'nvidia-smi'), 0o755);

    try {
      const answer = await runner(['metrics', id], { path: `${dir}:${process.env.PATH}` });
      expect(answer).toMatchObject({
        available: true,
        gpus: [
          { gpu_memory_usage_bytes: 0, gpu_util_percent: 37 },
          { gpu_memory_usage_bytes: 300 * 1024 * 1024, gpu_util_percent: 0 },
        ],
      });

      // Without nvidia-smi on PATH, no GPUs.
      const plain = await runner(['metrics', id], { path: '/usr/bin:/bin' });
      expect(plain).toMatchObject({ available: true, gpus: [] });
    } finally {
      await runner(['remove', id]);
    }
  }, 60_000);
});
