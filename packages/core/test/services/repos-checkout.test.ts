import { beforeEach, describe, expect, it } from 'vitest';
import { initRepo, uploadCode } from '@dstack/core';
import type { JobSpec, ProjectRecord, RunRecord, RunSpec, UserRecord } from '@dstack/core';
import { jobRepoOf, repoPathOf } from '../../src/services/repos-checkout.js';
import { addProject, addUser, createTestContext } from '../crypto/test-context.js';
import type { TestContext } from '../crypto/test-context.js';

let ctx: TestContext;
let user: UserRecord;
let project: ProjectRecord;

beforeEach(async () => {
  ctx = createTestContext();
  user = await addUser(ctx, 'alice');
  project = await addProject(ctx, 'main', user);
});

async function runOf(
  repoId: string,
  repoData: Record<string, unknown>,
  codeHash: string | null,
  configuration: Record<string, unknown> = { type: 'task', commands: ['true'] },
): Promise<{ run: RunRecord; spec: JobSpec }> {
  const repo = await ctx.store.findOne('repos', { where: { projectId: project.id, name: repoId } });
  const runSpec = {
    repo_id: repoId, repo_data: repoData, repo_code_hash: codeHash, configuration,
  };
  const run = { id: 'run-1', projectId: project.id, userId: user.id, repoId: repo?.id ?? null,
    runSpec } as unknown as RunRecord;
  const spec = { repo_data: repoData, repo_code_hash: codeHash, single_branch: null } as
    unknown as JobSpec;

  return { run, spec };
}

const scope = () => ({ user, project });

describe('the repo a job checks out', () => {
  it('gives a local repo its uploaded archive', async () => {
    const info = { repo_type: 'local', repo_dir: '/home/alice/project' } as const;
    await initRepo(ctx, scope(), 'project', info, null);
    await uploadCode(ctx, project, 'project', 'hash-1', Buffer.from('tar bytes'));
    const { run, spec } = await runOf('project', info, 'hash-1');

    expect(await jobRepoOf(ctx, run, spec)).toEqual({
      kind: 'archive',
      path: '.',
      archive: Buffer.from('tar bytes'),
    });
  });

  it('gives a remote repo the run user\'s decrypted creds, commit and diff', async () => {
    const info = { repo_type: 'remote', repo_name: 'origin' } as const;
    const creds = {
      clone_url: 'https://git.example/org/origin.git',
      private_key: null,
      oauth_token: 'gho_secret',
    };
    await initRepo(ctx, scope(), 'origin', info, creds);
    const stored = await ctx.store.findOne('repo_creds', {});
    expect(stored?.creds).toMatch(/^enc:aes:key2:/);
    expect(stored?.creds).not.toContain('gho_secret');
    await uploadCode(ctx, project, 'origin', 'diff-1', Buffer.from('diff --git a/x b/x\n'));
    const data = {
      ...info, repo_branch: 'main', repo_hash: 'abc123', repo_config_name: 'Alice',
      repo_config_email: 'alice@example.com',
    };
    const { run, spec } = await runOf('origin', data, 'diff-1', {
      type: 'task', commands: ['true'], repos: [{ url: creds.clone_url, path: 'code/' }],
    });

    expect(await jobRepoOf(ctx, run, spec)).toEqual({
      kind: 'git',
      path: 'code',
      cloneUrl: 'https://git.example/org/origin.git',
      branch: 'main',
      hash: 'abc123',
      diff: Buffer.from('diff --git a/x b/x\n'),
      privateKey: null,
      oauthToken: 'gho_secret',
      configName: 'Alice',
      configEmail: 'alice@example.com',
      singleBranch: false,
    });
  });

  it('uses the run user\'s creds, not those of another member of the project', async () => {
    const info = { repo_type: 'remote', repo_name: 'origin' } as const;
    const bob = await addUser(ctx, 'bob');
    await initRepo(ctx, { user: bob, project }, 'origin', info,
      { clone_url: 'https://git.example/bob.git', private_key: null, oauth_token: 'bob-token' });
    const { run, spec } = await runOf('origin', info, null);

    await expect(jobRepoOf(ctx, run, spec)).rejects.toThrow('repo origin has no clone URL');

    await initRepo(ctx, scope(), 'origin', info,
      { clone_url: 'https://git.example/alice.git', private_key: null, oauth_token: 'a-token' });
    expect(await jobRepoOf(ctx, run, spec)).toMatchObject({
      cloneUrl: 'https://git.example/alice.git', oauthToken: 'a-token',
    });
  });

  it('clones a clean remote repo (no code hash) with an empty diff', async () => {
    const info = { repo_type: 'remote', repo_name: 'origin' } as const;
    await initRepo(ctx, scope(), 'origin', info, { clone_url: 'file:///srv/origin.git',
      private_key: 'KEY', oauth_token: null });
    const { run, spec } = await runOf('origin', info, null);
    const repo = await jobRepoOf(ctx, run, spec);

    expect(repo).toMatchObject({ kind: 'git', cloneUrl: 'file:///srv/origin.git',
      privateKey: 'KEY', branch: null, hash: null });
    expect(repo?.kind === 'git' && repo.diff.length).toBe(0);
  });

  it('refuses to run without the code the job names', async () => {
    const info = { repo_type: 'local', repo_dir: '/home/alice/project' } as const;
    await initRepo(ctx, scope(), 'project', info, null);
    const { run, spec } = await runOf('project', info, 'never-uploaded');

    await expect(jobRepoOf(ctx, run, spec)).rejects.toThrow(
      'the code of repo project (hash never-uploaded) is not on the server;'
        + ' submit the run again to upload it',
    );
  });

  it('refuses a remote repo without a clone URL and a repo deleted since the run', async () => {
    const info = { repo_type: 'remote', repo_name: 'origin' } as const;
    await initRepo(ctx, scope(), 'origin', info, null);
    const { run, spec } = await runOf('origin', info, null);

    await expect(jobRepoOf(ctx, run, spec)).rejects.toThrow(
      'repo origin has no clone URL; initialize it again',
    );

    await ctx.store.delete('repos', { id: run.repoId! });
    await expect(jobRepoOf(ctx, run, spec)).rejects.toThrow('repo origin does not exist any more');
  });

  it('gives a virtual run no repo', async () => {
    const { run, spec } = await runOf('none', { repo_type: 'virtual' }, null);

    expect(await jobRepoOf(ctx, run, spec)).toBeNull();
  });
});

describe('where the repo lands in the job directory', () => {
  const specWith = (path: string | undefined): RunSpec => ({
    run_name: null,
    configuration: { type: 'task', repos: path === undefined ? [] : [{ url: 'u', path }] },
  });

  it('keeps relative repos[].path, and maps absolute and ~ paths to the job directory', () => {
    expect(repoPathOf(specWith(undefined))).toBe('.');
    expect(repoPathOf(specWith('.'))).toBe('.');
    expect(repoPathOf(specWith('./src/app/'))).toBe('src/app');
    expect(repoPathOf(specWith('/workflow'))).toBe('.');
    expect(repoPathOf(specWith('~/repo'))).toBe('.');
  });

  it('refuses a path that leaves the job directory', () => {
    expect(() => repoPathOf(specWith('a/../../up'))).toThrow(
      "the repo path a/../../up is outside the job's directory",
    );
  });
});
