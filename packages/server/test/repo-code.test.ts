import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createCipher,
  createLocalBackendProvider,
  ensureDefaultFleet,
  newId,
  startScheduler,
} from '@dstack/core';
import type { Scheduler } from '@dstack/core';
import { createGitRepoFixture, createTarArchive } from '@dstack/core/testing';
import type { DstackServer } from '../src/index.js';
import { createTestServer, post } from './helpers.js';

const aesKey = {
  type: 'aes',
  name: 'key1',
  secret: Buffer.alloc(32, 9).toString('base64'),
} as const;

let server: DstackServer;
let scheduler: Scheduler;
let dir: string;

type Json = Record<string, any>;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dstack-repo-code-'));
  server = await createTestServer({
    cipher: createCipher([aesKey]),
    providers: [createLocalBackendProvider({ serverDir: dir })],
    settings: { serverDir: dir },
  });
  const project = await server.ctx.store.findOne('projects', { where: { name: 'main' } });
  await server.ctx.store.insert('backends', {
    id: newId(), projectId: project!.id, type: 'local', config: {}, auth: null,
    sourceConfig: {}, sourceAuth: null,
  });
  await ensureDefaultFleet(server.ctx, 'main');
  scheduler = startScheduler(server.ctx, { stopGraceMillis: 1000 });
});

afterAll(async () => {
  await scheduler.stop();
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

function api(path: string, body: unknown) {
  return post(server, `/api/project/main/${path}`, server.adminToken, body);
}

/** The body the CLI sends to `upload_code`: one `file` part named by the blob's sha256. */
async function uploadCode(repoId: string, blob: Uint8Array): Promise<string> {
  const hash = createHash('sha256').update(blob).digest('hex');
  const boundary = '----dstackrepocode';
  const head = `--${boundary}\r\nContent-Disposition: form-data; name="file"; `
    + `filename="${hash}"\r\nContent-Type: application/octet-stream\r\n\r\n`;
  const payload = Buffer.concat([
    Buffer.from(head), Buffer.from(blob), Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  const response = await server.inject({
    method: 'POST',
    url: `/api/project/main/repos/upload_code?repo_id=${encodeURIComponent(repoId)}`,
    headers: {
      authorization: `Bearer ${server.adminToken}`,
      'content-type': `multipart/form-data; boundary=${boundary}`,
    },
    payload,
  });
  expect(response.statusCode, response.body).toBe(200);

  return hash;
}

async function apply(runSpec: Json): Promise<void> {
  const applied = await api('runs/apply', {
    plan: { run_spec: { ssh_key_pub: 'ssh-rsa AAA', ...runSpec }, current_resource: null },
    force: false,
  });
  expect(applied.statusCode, applied.body).toBe(200);
}

async function finishedRun(runName: string): Promise<Json> {
  const deadline = Date.now() + 30_000;

  while (Date.now() < deadline) {
    const run = (await api('runs/get', { run_name: runName })).json() as Json;

    if (['done', 'failed', 'terminated'].includes(run.status)) {
      return run;
    }

    await new Promise((resolve) => setTimeout(resolve, 100));
  }

  throw new Error(`run ${runName} did not finish`);
}

async function logText(runName: string, submissionId: string, diagnose = false) {
  const logs = await api('logs/poll', {
    run_name: runName, job_submission_id: submissionId, limit: 1000, diagnose,
  });

  return (logs.json() as { logs: { message: string }[] }).logs
    .map((event) => Buffer.from(event.message, 'base64').toString()).join('');
}

describe('repo code reaches the job', () => {
  it('extracts a local repo uploaded as a tarball into the job directory', async () => {
    const repoInfo = { repo_type: 'local', repo_dir: '/home/user/project' };
    await api('repos/init', { repo_id: 'local-project', repo_info: repoInfo });
    const archive = createTarArchive([
      { name: 'train.py', content: 'print("training")\n' },
      { name: 'data/config.yml', content: 'epochs: 3\n' },
    ]);
    const hash = await uploadCode('local-project', archive);

    await apply({
      run_name: 'local-code',
      repo_id: 'local-project',
      repo_data: repoInfo,
      repo_code_hash: hash,
      configuration: {
        type: 'task',
        commands: ['cat train.py data/config.yml', 'echo "repo=$DSTACK_REPO_DIR"'],
        repos: [{ local_path: '.', path: '.' }],
      },
    });
    const run = await finishedRun('local-code');
    const submission = run.jobs[0].job_submissions[0];
    const text = await logText('local-code', submission.id);

    expect(run.status, await logText('local-code', submission.id, true)).toBe('done');
    expect(text).toContain('print("training")\nepochs: 3\n');
    expect(text).toMatch(/repo=\/.*\/local\/jobs\/[0-9a-f-]+\/work\n/);
  });

  it('clones a remote repo with its stored creds at the commit and applies the diff',
    async () => {
      const fixture = await createGitRepoFixture(join(dir, 'git'), {
        'train.py': 'print("v1")\n',
      }, {
        'train.py': 'print("v2 from the diff")\n',
      }, { 'train.py': 'print("pushed later")\n' });
      const repoInfo = { repo_type: 'remote', repo_name: 'origin' };
      const init = await api('repos/init', {
        repo_id: 'remote-project',
        repo_info: repoInfo,
        repo_creds: { clone_url: fixture.cloneUrl, oauth_token: 'gho_not_needed' },
      });
      expect(init.statusCode, init.body).toBe(200);
      const stored = await server.ctx.store.findOne('repo_creds', {});
      expect(stored?.creds).toMatch(/^enc:aes:key1:/);
      const hash = await uploadCode('remote-project', fixture.diff);

      await apply({
        run_name: 'remote-code',
        repo_id: 'remote-project',
        repo_data: { ...repoInfo, repo_branch: fixture.branch, repo_hash: fixture.hash },
        repo_code_hash: hash,
        configuration: {
          type: 'task',
          commands: ['cat code/train.py', 'cd code && git rev-parse HEAD'],
          repos: [{ url: 'https://example.com/org/origin.git', path: 'code' }],
        },
      });
      const run = await finishedRun('remote-code');
      const submission = run.jobs[0].job_submissions[0];
      const text = await logText('remote-code', submission.id);
      const runnerText = await logText('remote-code', submission.id, true);

      expect(run.status, runnerText).toBe('done');
      expect(text).toBe(`print("v2 from the diff")\n${fixture.hash}\n`);
      expect(runnerText).not.toContain('gho_not_needed');
    });

  it('fails the job with a clear reason when the code was never uploaded', async () => {
    const repoInfo = { repo_type: 'local', repo_dir: '/home/user/other' };
    await api('repos/init', { repo_id: 'no-code', repo_info: repoInfo });
    const missing = 'f'.repeat(64);

    await apply({
      run_name: 'missing-code',
      repo_id: 'no-code',
      repo_data: repoInfo,
      repo_code_hash: missing,
      configuration: { type: 'task', commands: ['echo should not run'] },
    });
    const run = await finishedRun('missing-code');
    const submission = run.jobs[0].job_submissions[0];

    expect(run.status).toBe('failed');
    expect(submission.termination_reason).toBe('terminated_by_server');
    expect(submission.termination_reason_message).toBe(
      `the code of repo no-code (hash ${missing}) is not on the server;`
        + ' submit the run again to upload it',
    );
    expect(await logText('missing-code', submission.id)).toBe('');
  });
});
