import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import type { CoreContext } from '../context.js';
import {
  backendTypesInUse,
  createBackend,
  storedSourceConfig,
  updateBackend,
} from './backends.js';
import type { BackendConfigInput, BackendsScope } from './backends.js';
import { findProjectByName } from './projects.js';

/** One entry of config.yml's `projects`. */
export interface ConfigProjectBackends {
  name: string;
  backends?: readonly BackendConfigInput[] | null;
}

export interface SyncConfigBackendsOptions {
  /** Reads a `filename` a credential points to; defaults to the file system. */
  readFile?: (path: string) => string;
}

/** What a sync did in one project. */
export interface ProjectBackendsSync {
  projectName: string;
  created: string[];
  updated: string[];
  unchanged: string[];
  deleted: string[];
  /** Not in the file, but active instances still use them. */
  kept: string[];
  failed: string[];
}

function readFromDisk(path: string): string {
  const expanded = path === '~' || path.startsWith('~/') ? homedir() + path.slice(1) : path;

  return readFileSync(expanded, 'utf8');
}

/**
 * The file form to the normal form: every `{filename}` without `data` gets the file's
 * contents as `data` (credentials and kubeconfigs), as the original does when it parses.
 */
function fileFormToConfig(value: unknown, readFile: (path: string) => string): unknown {
  if (Array.isArray(value)) {
    return value.map((item) => fileFormToConfig(item, readFile));
  }

  if (typeof value !== 'object' || value === null) {
    return value;
  }

  const object = Object.fromEntries(
    Object.entries(value).map(([key, item]) => [key, fileFormToConfig(item, readFile)]),
  ) as Record<string, unknown>;

  if (typeof object.filename === 'string' && (object.data === undefined || object.data === null)) {
    try {
      object.data = readFile(object.filename);
    } catch {
      throw new Error(`No such file ${object.filename}`);
    }
  }

  return object;
}

/** JSON with sorted keys: two configs are the same when their canonical forms are. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, item: unknown) => {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) {
      return item;
    }

    return Object.fromEntries(Object.entries(item).sort(([a], [b]) => a.localeCompare(b)));
  });
}

async function syncProject(
  ctx: CoreContext,
  entry: ConfigProjectBackends,
  readFile: (path: string) => string,
): Promise<ProjectBackendsSync | undefined> {
  const log = ctx.logger;
  const project = await findProjectByName(ctx.store, entry.name);

  if (project === undefined) {
    log.warn({ projectName: entry.name }, 'config.yml lists a project that does not exist');

    return undefined;
  }

  // config.yml is the operator's file, so it may configure what only a global admin may.
  const scope: BackendsScope = { user: { id: project.ownerId, globalRole: 'admin' }, project };
  const result: ProjectBackendsSync = {
    projectName: project.name, created: [], updated: [], unchanged: [], deleted: [], kept: [],
    failed: [],
  };
  const listed = new Set<string>();

  for (const fileConfig of entry.backends ?? []) {
    const type = fileConfig.type;
    listed.add(type);
    const existing = await ctx.store.findOne('backends', {
      where: { projectId: project.id, type },
    });
    const action = existing === undefined ? 'create' : 'update';

    try {
      const config = fileFormToConfig(fileConfig, readFile) as BackendConfigInput;
      const stored = existing === undefined ? undefined : storedSourceConfig(ctx, existing);

      if (stored !== undefined && canonical(stored) === canonical(config)) {
        result.unchanged.push(type);
        continue;
      }

      await (action === 'create' ? createBackend : updateBackend)(ctx, scope, config);
      (action === 'create' ? result.created : result.updated).push(type);
    } catch (error) {
      result.failed.push(type);
      log.warn(
        { projectName: project.name, backend: type, reason: (error as Error).message },
        `Failed to ${action} backend ${type} in project ${project.name}`,
      );
    }
  }

  const stale = (await ctx.store.find('backends', { where: { projectId: project.id } }))
    .map((record) => record.type)
    .filter((type) => !listed.has(type) && type !== 'dstack');
  const inUse = new Set(await backendTypesInUse(ctx.store, project.id, stale));

  for (const type of stale) {
    if (inUse.has(type)) {
      result.kept.push(type);
      log.warn(
        { projectName: project.name, backend: type },
        `Backend ${type} is not in config.yml but active instances of project ${project.name}`
          + ' still use it, so it is kept; it goes at a later start once they are terminated',
      );
      continue;
    }

    await ctx.store.delete('backends', { projectId: project.id, type });
    result.deleted.push(type);
  }

  if (result.deleted.length > 0) {
    log.info({ projectName: project.name, backends: result.deleted }, 'backends deleted');
  }

  return result;
}

/**
 * Applies config.yml's backends to the projects it lists: creates or updates those that
 * changed, and deletes those the file no longer lists, except a backend that active instances
 * still use (kept, with a warning saying why). Projects must exist; failures are warnings.
 */
export async function syncConfigBackends(
  ctx: CoreContext,
  projects: readonly ConfigProjectBackends[],
  options: SyncConfigBackendsOptions = {},
): Promise<ProjectBackendsSync[]> {
  const readFile = options.readFile ?? readFromDisk;
  const results: ProjectBackendsSync[] = [];

  for (const entry of projects) {
    const result = await syncProject(ctx, entry, readFile);

    if (result !== undefined) {
      results.push(result);
    }
  }

  return results;
}
