import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentGitRepo, InstanceAgent, JobProvisioningData } from '@dstack/core';
import { createGitRepoFixture, createTarArchive } from '@dstack/core/testing';
import { createSshBackendProvider } from '../src/index.js';
import type { SshBackendProvider } from '../src/index.js';
import { agentJob, remoteHostFor, text, untilFinished } from './helpers.js';
import { generateKeyPair, startSshd } from './sshd-harness.js';
import type { SshdHost } from './sshd-harness.js';

let host: SshdHost;
let provider: SshBackendProvider;
let data: JobProvisioningData;
let agent: InstanceAgent;
let fixtureDir: string;
const userKey = generateKeyPair('user@laptop');

beforeAll(async () => {
  const projectKey = generateKeyPair('dstack-project');
  host = await startSshd({ address: '127.0.0.20', authorizedKeys: [userKey.publicKey] });
  provider = createSshBackendProvider({ connectTimeoutMillis: 5000 });
  const provisioned = await provider.provisionHost(remoteHostFor(host, userKey, projectKey),
    { timeoutMillis: 30_000 });
  data = provisioned.provisioningData;
  agent = provider.agent(data);
  fixtureDir = await mkdtemp(join(tmpdir(), 'ssh-repo-'));
});

afterAll(async () => {
  await provider?.close();
  await host?.stop();
  await rm(fixtureDir, { recursive: true, force: true });
});

function gitRepo(cloneUrl: string, extra: Partial<AgentGitRepo> = {}): AgentGitRepo {
  return {
    kind: 'git', path: '.', cloneUrl, branch: null, hash: null, diff: new Uint8Array(),
    privateKey: null, oauthToken: null, configName: null, configEmail: null,
    singleBranch: false, ...extra,
  };
}

const jobDir = (id: string) => join(host.home, '.dstack-agent', 'jobs', id);

describe('repo code on an SSH host', () => {
  it('extracts the archive under repos[].path and sets the repo and working dir env',
    async () => {
      const archive = createTarArchive([
        { name: 'pkg/train.py', content: 'print("ssh train")\n' },
        { name: 'pkg/link.py', type: 'symlink', linkName: 'train.py' },
      ]);
      const spec = agentJob(['cat pkg/link.py', 'echo "$DSTACK_REPO_DIR"', 'pwd'], {
        repo: { kind: 'archive', path: 'code', archive },
        workingDir: 'code',
      });
      await agent.submit(spec);

      const pulled = await untilFinished(agent, spec.jobSubmissionId);
      const repoDir = join(jobDir(spec.jobSubmissionId), 'work', 'code');

      expect(pulled.state).toMatchObject({ status: 'done', exitStatus: 0 });
      expect(text(pulled.jobLogs)).toBe(`print("ssh train")\n${repoDir}\n${repoDir}\n`);
      expect(existsSync(join(host.home, '.dstack-agent', 'incoming',
        `${spec.jobSubmissionId}.blob`))).toBe(false);
    });

  it('leaves neither the creds nor the blob in the job directory', async () => {
    const fixture = await createGitRepoFixture(join(fixtureDir, 'creds'), { 'a.txt': 'a\n' },
      { 'a.txt': 'b\n' });
    const spec = agentJob(['cat a.txt'], {
      repo: gitRepo(fixture.cloneUrl, {
        hash: fixture.hash, diff: fixture.diff, oauthToken: 'ssh-secret-token',
      }),
    });
    await agent.submit(spec);

    const pulled = await untilFinished(agent, spec.jobSubmissionId);
    const files = readdirSync(jobDir(spec.jobSubmissionId)).sort();

    expect(pulled.state).toMatchObject({ status: 'done', exitStatus: 0 });
    expect(text(pulled.jobLogs)).toBe('b\n');
    expect(files).toEqual(['events', 'script.sh', 'spec.json', 'state.json', 'supervisor.log',
      'work']);
    expect(text(pulled.runnerLogs)).not.toContain('ssh-secret-token');
  });

  it('clones over SSH with the stored private key, removed before the commands run',
    async () => {
      const fixture = await createGitRepoFixture(join(fixtureDir, 'ssh'), {
        'over-ssh.txt': 'cloned with a key\n',
      }, {});
      const origin = join(fixtureDir, 'ssh', 'origin.git');
      // The supervisor may be replacing state.json right then: its temporary file is no secret.
      const spec = agentJob(['cat over-ssh.txt', 'ls .. | grep -v "\\.tmp$"'], {
        repo: gitRepo(`ssh://root@${host.address}:${host.port}${origin}`, {
          hash: fixture.hash, privateKey: userKey.privateKey,
        }),
      });
      await agent.submit(spec);

      const pulled = await untilFinished(agent, spec.jobSubmissionId);

      expect(pulled.state, text(pulled.runnerLogs)).toMatchObject({
        status: 'done', exitStatus: 0,
      });
      expect(text(pulled.jobLogs)).toBe(
        'cloned with a key\nevents\nscript.sh\nspec.json\nstate.json\nsupervisor.log\nwork\n',
      );
    });

  it('stops a job while its clone waits on a silent server', async () => {
    const requests: string[] = [];
    const silent = createHttpServer((request) => {
      requests.push(request.url ?? '');
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as AddressInfo;

    try {
      const spec = agentJob(['echo never'], {
        repo: gitRepo(`http://127.0.0.1:${port}/repo.git`),
      });
      await agent.submit(spec);
      const deadline = Date.now() + 20_000;

      while (requests.length === 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }

      expect(requests[0]).toContain('/repo.git/info/refs');
      await agent.stop(spec.jobSubmissionId, { force: false });
      const pulled = await untilFinished(agent, spec.jobSubmissionId);

      expect(pulled.state).toMatchObject({
        status: 'terminated',
        terminationReason: 'terminated_by_user',
        message: 'the job was stopped before it started',
      });
      expect(pulled.jobLogs).toEqual([]);
    } finally {
      silent.closeAllConnections();
      silent.close();
    }
  });

  it('drops code uploaded for a submit that never reached the host when the job is removed',
    async () => {
      const id = randomUUID();
      const incoming = join(host.home, '.dstack-agent', 'incoming', `${id}.blob`);
      mkdirSync(dirname(incoming), { recursive: true });
      writeFileSync(incoming, 'orphaned code');

      await agent.remove(id);

      expect(existsSync(incoming)).toBe(false);
    });

  it('fails the job when git cannot apply the diff, and when the blob is not a tar archive',
    async () => {
      const fixture = await createGitRepoFixture(join(fixtureDir, 'bad'), { 'a.txt': 'a\n' }, {});
      const diff = Buffer.from('diff --git a/gone.txt b/gone.txt\n--- a/gone.txt\n'
        + '+++ b/gone.txt\n@@ -1 +1 @@\n-old\n+new\n');
      const badDiff = agentJob(['echo never'], { repo: gitRepo(fixture.cloneUrl, { diff }) });
      const notTar = agentJob(['echo never'], {
        repo: { kind: 'archive', path: '.', archive: Buffer.alloc(2048, 'x') },
      });
      await agent.submit(badDiff);
      await agent.submit(notTar);

      const applied = await untilFinished(agent, badDiff.jobSubmissionId);
      const extracted = await untilFinished(agent, notTar.jobSubmissionId);

      expect(applied.state).toMatchObject({
        status: 'failed', terminationReason: 'container_exited_with_error',
      });
      expect(applied.state?.message).toMatch(/^Failed to set up the repo \(git apply .*gone/);
      expect(extracted.state?.message).toMatch(/^Failed to set up the repo \(not a tar archive/);
    });
});
