import { posix } from 'node:path';
import type { CoreContext } from '../context.js';
import type { JobSpec } from '../domain/job.js';
import type { RunSpec } from '../domain/run.js';
import type { AgentRepo } from '../ports/backend-provider.js';
import type { RunRecord } from '../records.js';
import { getRepoCode } from './repos.js';

/** Why a job cannot get its repo; the job ends with this message instead of running. */
export class JobRepoError extends Error {
  override readonly name = 'JobRepoError';
}

interface RepoFields {
  repoData: Record<string, unknown>;
  codeHash: string | null;
}

function textOrNull(value: unknown): string | null {
  return typeof value === 'string' && value !== '' ? value : null;
}

/** The job's repo fields; jobs of older specs carry them only in the run spec. */
function repoFieldsOf(spec: JobSpec, runSpec: RunSpec): RepoFields {
  const data = (spec.repo_data ?? runSpec.repo_data ?? { repo_type: 'virtual' }) as object;

  return {
    repoData: data as Record<string, unknown>,
    codeHash: textOrNull(spec.repo_code_hash) ?? textOrNull(runSpec.repo_code_hash),
  };
}

/**
 * Where the repo lands inside the job's own directory. That directory stands in for the
 * container's default working directory, so `repos[].path` (relative to it) keeps its
 * meaning; absolute and `~` paths, such as the legacy `/workflow`, name it too.
 */
export function repoPathOf(runSpec: RunSpec): string {
  const configuration = runSpec.configuration as { repos?: unknown } | undefined;
  const repos = Array.isArray(configuration?.repos) ? configuration.repos : [];
  const first = repos[0] as { path?: unknown } | undefined;
  const path = typeof first?.path === 'string' ? first.path : '.';

  if (path.startsWith('/') || path.startsWith('~')) {
    return '.';
  }

  const normalized = posix.normalize(path);

  if (normalized === '..' || normalized.startsWith('../')) {
    throw new JobRepoError(`the repo path ${path} is outside the job's directory`);
  }

  return normalized.replace(/\/$/, '');
}

interface StoredCreds {
  clone_url?: string;
  private_key?: string | null;
  oauth_token?: string | null;
}

/** The run user's own creds for the repo, else the legacy repo-level ones (as the original). */
async function cloneCredsOf(
  ctx: CoreContext,
  repoRowId: string,
  userId: string,
): Promise<StoredCreds | null> {
  const own = await ctx.store.findOne('repo_creds', { where: { repoId: repoRowId, userId } });
  const repo = await ctx.store.get('repos', repoRowId);
  const stored = own?.creds ?? repo?.creds ?? null;

  return stored === null ? null : (JSON.parse(ctx.cipher.decrypt(stored)) as StoredCreds);
}

async function codeOf(
  ctx: CoreContext,
  run: RunRecord,
  repoName: string,
  codeHash: string | null,
): Promise<Uint8Array> {
  if (codeHash === null) {
    return new Uint8Array();
  }

  const code = await getRepoCode(ctx.store, run.repoId ?? '', codeHash);

  if (code === null) {
    throw new JobRepoError(
      `the code of repo ${repoName} (hash ${codeHash}) is not on the server;`
        + ' submit the run again to upload it',
    );
  }

  return code;
}

/**
 * The repo a job checks out, loaded for the agent: the archive of a local repo, or the
 * clone spec, decrypted creds and diff of a remote one; null for a virtual repo. Throws a
 * JobRepoError when the stored code or the clone URL the job needs is missing.
 */
export async function jobRepoOf(
  ctx: CoreContext,
  run: RunRecord,
  spec: JobSpec,
): Promise<AgentRepo | null> {
  const runSpec = run.runSpec as RunSpec;
  const { repoData, codeHash } = repoFieldsOf(spec, runSpec);
  const repoName = String(runSpec.repo_id ?? 'none');

  // TODO: the original also extracts a code archive that the Python API attaches to a virtual
  // repo; runs of virtual repos start with no code here until that upload path exists.
  if (repoData.repo_type !== 'local' && repoData.repo_type !== 'remote') {
    return null;
  }

  if (run.repoId === null || (await ctx.store.get('repos', run.repoId)) === undefined) {
    throw new JobRepoError(`repo ${repoName} does not exist any more`);
  }

  const path = repoPathOf(runSpec);
  const code = await codeOf(ctx, run, repoName, codeHash);

  if (repoData.repo_type === 'local') {
    return { kind: 'archive', path, archive: code };
  }

  const creds = await cloneCredsOf(ctx, run.repoId, run.userId);
  const cloneUrl = textOrNull(creds?.clone_url);

  if (cloneUrl === null) {
    throw new JobRepoError(`repo ${repoName} has no clone URL; initialize it again`);
  }

  return {
    kind: 'git',
    path,
    cloneUrl,
    branch: textOrNull(repoData.repo_branch),
    hash: textOrNull(repoData.repo_hash),
    diff: code,
    privateKey: textOrNull(creds?.private_key),
    oauthToken: textOrNull(creds?.oauth_token),
    configName: textOrNull(repoData.repo_config_name),
    configEmail: textOrNull(repoData.repo_config_email),
    singleBranch: spec.single_branch === true,
  };
}
