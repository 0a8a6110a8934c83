import type { CoreContext } from '../context.js';
import type {
  WireRepoCreds,
  WireRepoHead,
  WireRepoHeadWithCreds,
  WireRepoInfo,
} from '../domain/repo.js';
import {
  RepoDoesNotExistError,
  ResourceNotExistsError,
  ServerClientError,
} from '../errors/server-errors.js';
import type { StateAccess } from '../ports/state-store.js';
import type { ProjectRecord, RepoRecord, UserRecord } from '../records.js';
import { DuplicateKeyError } from '../stores/errors.js';
import { newId } from '../util/ids.js';

/** Who works with repos in which project. */
export interface ReposScope {
  user: Pick<UserRecord, 'id' | 'name'>;
  project: Pick<ProjectRecord, 'id' | 'name'>;
}

/** The largest code upload the original accepts by default, in bytes (2 MiB). */
export const defaultCodeUploadLimitBytes = 2 * 1024 * 1024;

function headOf(repo: RepoRecord): WireRepoHead {
  return { repo_id: repo.name, repo_info: repo.info as WireRepoInfo };
}

function credsOf(stored: string): WireRepoCreds {
  const creds = JSON.parse(stored) as Partial<WireRepoCreds>;

  return {
    clone_url: creds.clone_url ?? '',
    private_key: creds.private_key ?? null,
    oauth_token: creds.oauth_token ?? null,
  };
}

async function findRepo(
  access: StateAccess,
  projectId: string,
  repoId: string,
): Promise<RepoRecord | undefined> {
  return access.findOne('repos', { where: { projectId, name: repoId } });
}

/** The project's repos. */
export async function listRepos(
  ctx: CoreContext,
  project: Pick<ProjectRecord, 'id'>,
): Promise<WireRepoHead[]> {
  const repos = await ctx.store.find('repos', {
    where: { projectId: project.id },
    orderBy: [['name', 'asc']],
  });

  return repos.map(headOf);
}

/**
 * One repo, with credentials when asked for and the repo is remote: the caller's own
 * credentials, else the legacy repo-level ones. 400 `resource_not_exists` when missing.
 */
export async function getRepo(
  ctx: CoreContext,
  scope: ReposScope,
  repoId: string,
  includeCreds: boolean,
): Promise<WireRepoHeadWithCreds> {
  const repo = await findRepo(ctx.store, scope.project.id, repoId);

  if (repo === undefined) {
    throw new ResourceNotExistsError();
  }

  const head = headOf(repo);

  if (!includeCreds || repo.type !== 'remote') {
    return { ...head, repo_creds: null };
  }

  const own = await ctx.store.findOne('repo_creds', {
    where: { repoId: repo.id, userId: scope.user.id },
  });
  const stored = own?.creds ?? repo.creds;

  return { ...head, repo_creds: stored === null ? null : credsOf(ctx.cipher.decrypt(stored)) };
}

async function upsertRepo(
  tx: StateAccess,
  projectId: string,
  repoId: string,
  info: WireRepoInfo,
): Promise<RepoRecord> {
  const existing = await findRepo(tx, projectId, repoId);

  if (existing !== undefined) {
    // The original keeps the type a repo was created with and only replaces its info.
    await tx.update('repos', { id: existing.id }, { info });

    return { ...existing, info };
  }

  const repo: RepoRecord = {
    id: newId(),
    projectId,
    name: repoId,
    type: info.repo_type,
    info,
    creds: null,
  };
  await tx.insert('repos', repo);

  return repo;
}

async function writeRepo(
  ctx: CoreContext,
  scope: ReposScope,
  repoId: string,
  info: WireRepoInfo,
  creds: WireRepoCreds | null,
): Promise<void> {
  await ctx.store.transaction(async (tx) => {
    const repo = await upsertRepo(tx, scope.project.id, repoId, info);

    if (repo.type !== 'remote') {
      return;
    }

    const where = { repoId: repo.id, userId: scope.user.id };

    if (creds === null) {
      await tx.delete('repo_creds', where);

      return;
    }

    const encrypted = ctx.cipher.encrypt(JSON.stringify(creds));
    const updated = await tx.update('repo_creds', where, { creds: encrypted });

    if (updated === 0) {
      await tx.insert('repo_creds', { id: newId(), ...where, creds: encrypted });
    }
  });
}

/**
 * Creates the repo or replaces its info (upsert). For a remote repo the caller's credentials
 * are stored encrypted, per user; init without credentials removes the caller's.
 */
export async function initRepo(
  ctx: CoreContext,
  scope: ReposScope,
  repoId: string,
  info: WireRepoInfo,
  creds: WireRepoCreds | null,
): Promise<void> {
  // Clients of other versions send more fields (older remote repos: repo_host_name,
  // repo_port, repo_user_name); they are kept and given back as sent.
  const stored = { ...info };

  try {
    await writeRepo(ctx, scope, repoId, stored, creds);
  } catch (error) {
    // Another request created the same repo or creds in between: this one updates them.
    if (!(error instanceof DuplicateKeyError)) {
      throw error;
    }

    await writeRepo(ctx, scope, repoId, stored, creds);
  }

  ctx.logger.info({ projectName: scope.project.name, repoId }, 'repo initialized');
}

/** Deletes the named repos with their credentials and code; unknown ids are ignored. */
export async function deleteRepos(
  ctx: CoreContext,
  project: Pick<ProjectRecord, 'id' | 'name'>,
  repoIds: readonly string[],
): Promise<void> {
  await ctx.store.transaction(async (tx) => {
    const repos = await tx.find('repos', {
      where: { projectId: project.id, name: { in: [...new Set(repoIds)] } },
    });
    const ids = repos.map((repo) => repo.id);

    await tx.delete('repo_creds', { repoId: { in: ids } });
    await tx.delete('codes', { repoId: { in: ids } });
    await tx.delete('repos', { id: { in: ids } });
  });

  ctx.logger.info({ projectName: project.name, repoIds }, 'repos deleted');
}

/** Sizes as the original prints them: `2.0MiB`, `512.0B`. */
export function formatSize(bytes: number): string {
  let value = bytes;

  for (const unit of ['', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei', 'Zi']) {
    if (Math.abs(value) < 1024) {
      return `${value.toFixed(1)}${unit}B`;
    }

    value /= 1024;
  }

  return `${value.toFixed(1)}YiB`;
}

/**
 * Throws the original's 400 when an upload of `sizeBytes` exceeds `limitBytes` (0 disables
 * the limit); when both round to the same text the message gives exact byte counts.
 */
export function checkCodeUploadSize(sizeBytes: number, limitBytes: number): void {
  if (limitBytes <= 0 || sizeBytes <= limitBytes) {
    return;
  }

  let size = formatSize(sizeBytes);
  let limit = formatSize(limitBytes);

  if (size === limit) {
    size = `${sizeBytes}B`;
    limit = `${limitBytes}B`;
  }

  throw new ServerClientError(
    `Repo diff size is ${size}, which exceeds the limit of ${limit}.`
      + ' Use .gitignore to exclude large files from the repo.'
      + ' This limit can be modified by setting the DSTACK_SERVER_CODE_UPLOAD_LIMIT'
      + ' environment variable.',
  );
}

/**
 * Stores a code blob for the repo under the hash the client named it by; a blob already
 * stored under that hash is kept. 400 `repo_does_not_exist` for an unknown repo.
 */
export async function uploadCode(
  ctx: CoreContext,
  project: Pick<ProjectRecord, 'id' | 'name'>,
  repoId: string,
  blobHash: string | null,
  blob: Uint8Array,
): Promise<void> {
  const repo = await findRepo(ctx.store, project.id, repoId);

  if (repo === undefined) {
    throw new RepoDoesNotExistError(repoId);
  }

  if (blobHash === null || blobHash === '') {
    throw new ServerClientError('filename not specified');
  }

  const existing = await ctx.store.findOne('codes', { where: { repoId: repo.id, blobHash } });

  if (existing !== undefined) {
    return;
  }

  const encoded = Buffer.from(blob).toString('base64');

  try {
    await ctx.store.insert('codes', { id: newId(), repoId: repo.id, blobHash, blob: encoded });
  } catch (error) {
    // A concurrent upload stored the same blob first; one copy is enough.
    if (!(error instanceof DuplicateKeyError)) {
      throw error;
    }
  }

  ctx.logger.info({ projectName: project.name, repoId, bytes: blob.length }, 'code uploaded');
}

/** A stored code blob of the repo row, or null when none has that hash. */
export async function getRepoCode(
  access: StateAccess,
  repoRowId: string,
  blobHash: string,
): Promise<Buffer | null> {
  const code = await access.findOne('codes', { where: { repoId: repoRowId, blobHash } });

  return code === undefined ? null : Buffer.from(code.blob, 'base64');
}
