import type { CoreContext } from '../context.js';
import { toProject } from '../domain/project.js';
import type { Project, ProjectsInfoList } from '../domain/project.js';
import {
  ForbiddenError,
  ResourceExistsError,
  ServerClientError,
} from '../errors/server-errors.js';
import type { StateAccess } from '../ports/state-store.js';
import type { MemberRecord, ProjectRecord, UserRecord } from '../records.js';
import { newId } from '../util/ids.js';
import { canCreateProjects, isGlobalAdmin, isProjectAdmin } from './access.js';
import { eventTarget, recordEvent } from './events.js';
import { deletedName, generateSshKeyPair, keysetPage } from './users.js';
import type { KeysetQuery } from './users.js';

/** The project the server creates at first start. */
export const defaultProjectName = 'main';

const projectNamePattern = /^[a-zA-Z0-9-_]{1,50}$/;

/** Run statuses after which a run no longer blocks deleting its project. */
const finishedRunStatuses = ['terminated', 'failed', 'done'];

/** The non-deleted project with this name, compared case-insensitively, or undefined. */
export async function findProjectByName(
  access: StateAccess,
  name: string,
): Promise<ProjectRecord | undefined> {
  const exact = await access.findOne('projects', { where: { name, deleted: false } });

  if (exact !== undefined) {
    return exact;
  }

  const lower = name.toLowerCase();
  const projects = await access.find('projects', { where: { deleted: false } });
  return projects.find((project) => project.name.toLowerCase() === lower);
}

/** The user's membership in the project, or undefined. */
export async function findMember(
  access: StateAccess,
  projectId: string,
  userId: string,
): Promise<MemberRecord | undefined> {
  return access.findOne('members', { where: { projectId, userId } });
}

/** The project's memberships with their users, in membership order. */
export async function listProjectMembers(
  access: StateAccess,
  projectId: string,
): Promise<{ member: MemberRecord; user: UserRecord }[]> {
  const members = await access.find('members', {
    where: { projectId },
    orderBy: [['memberNum', 'asc']],
  });
  const users = await access.find('users', {
    where: { id: { in: members.map((member) => member.userId) } },
  });
  const byId = new Map(users.map((user) => [user.id, user]));

  return members.flatMap((member) => {
    const user = byId.get(member.userId);
    return user === undefined ? [] : [{ member, user }];
  });
}

/** The wire form of a project with its members and backends (`projects/{p}/get`). */
export async function getProject(ctx: CoreContext, project: ProjectRecord): Promise<Project> {
  const members = await listProjectMembers(ctx.store, project.id);
  const backends = await ctx.store.find('backends', { where: { projectId: project.id } });
  const owner = await ctx.store.get('users', project.ownerId);

  if (owner === undefined) {
    throw new Error(`project ${project.name} has no owner row`);
  }

  return toProject({ project, owner, members, backends }, ctx.settings.defaultPermissions);
}

async function listWithOwners(
  ctx: CoreContext,
  projects: readonly ProjectRecord[],
): Promise<Project[]> {
  const owners = await ctx.store.find('users', {
    where: { id: { in: [...new Set(projects.map((project) => project.ownerId))] } },
  });
  const byId = new Map(owners.map((user) => [user.id, user]));

  return projects.flatMap((project) => {
    const owner = byId.get(project.ownerId);
    const parts = { project, owner: owner as UserRecord, members: [], backends: [] };
    return owner === undefined ? [] : [toProject(parts, ctx.settings.defaultPermissions)];
  });
}

/** What a new project looks like. */
export interface CreateProjectInput {
  projectName: string;
  isPublic?: boolean;
  templatesRepo?: string | null;
}

/** Inserts a project with a fresh SSH key pair and its owner as the first admin member. */
async function insertProject(
  ctx: CoreContext,
  tx: StateAccess,
  owner: UserRecord,
  input: CreateProjectInput,
  keys: { publicKey: string; privateKey: string },
): Promise<ProjectRecord> {
  const project: ProjectRecord = {
    id: newId(),
    name: input.projectName,
    createdAt: ctx.now(),
    ownerId: owner.id,
    isPublic: input.isPublic ?? false,
    templatesRepo: input.templatesRepo ?? null,
    deleted: false,
    originalName: null,
    sshPublicKey: keys.publicKey,
    sshPrivateKey: ctx.cipher.encrypt(keys.privateKey),
  };

  await tx.insert('projects', project);
  await tx.insert('members', {
    id: newId(),
    projectId: project.id,
    userId: owner.id,
    projectRole: 'admin',
    memberNum: 0,
  });
  return project;
}

/**
 * Creates a project owned by the actor, who becomes its admin. 403 when the actor may not
 * create projects, 400 for a bad or taken name or a full quota.
 */
export async function createProject(
  ctx: CoreContext,
  actor: UserRecord,
  input: CreateProjectInput,
): Promise<ProjectRecord> {
  if (!canCreateProjects(actor, ctx.settings.defaultPermissions)) {
    throw new ForbiddenError('User cannot create projects');
  }

  if (!projectNamePattern.test(input.projectName)) {
    throw new ServerClientError("Project name should match regex '^[a-zA-Z0-9-_]{1,50}$'");
  }

  const keys = await generateSshKeyPair(`${input.projectName}@dstack`);

  // TODO: import the global exports into a new project once exports exist (issue of gateways).
  const project = await ctx.store.transaction(async (tx) => {
    if ((await findProjectByName(tx, input.projectName)) !== undefined) {
      throw new ResourceExistsError();
    }

    if (!isGlobalAdmin(actor)) {
      const owned = await tx.count('projects', { ownerId: actor.id, deleted: false });

      if (owned >= ctx.settings.userProjectQuota) {
        throw new ServerClientError('User project quota exceeded');
      }
    }

    const created = await insertProject(ctx, tx, actor, input, keys);
    await recordEvent(ctx, tx, 'Project created', actor, [eventTarget.project(created)]);
    return created;
  });

  ctx.logger.info({ projectName: project.name, owner: actor.name }, 'project created');
  return project;
}

/**
 * The project with this name, created with `owner` as its admin when missing (first start
 * and config.yml). No permission or quota check: the server itself asks.
 */
export async function getOrCreateProject(
  ctx: CoreContext,
  owner: UserRecord,
  projectName: string,
): Promise<{ project: ProjectRecord; created: boolean }> {
  const existing = await findProjectByName(ctx.store, projectName);

  if (existing !== undefined) {
    return { project: existing, created: false };
  }

  if (!projectNamePattern.test(projectName)) {
    throw new ServerClientError("Project name should match regex '^[a-zA-Z0-9-_]{1,50}$'");
  }

  const keys = await generateSshKeyPair(`${projectName}@dstack`);
  return ctx.store.transaction(async (tx) => {
    const again = await findProjectByName(tx, projectName);

    if (again !== undefined) {
      return { project: again, created: false };
    }

    const project = await insertProject(ctx, tx, owner, { projectName }, keys);
    await recordEvent(ctx, tx, 'Project created', null, [eventTarget.project(project)]);
    ctx.logger.info({ projectName, owner: owner.name }, 'project created');
    return { project, created: true };
  });
}

/** What `projects/list` takes. */
export interface ListProjectsQuery extends KeysetQuery {
  includeNotJoined: boolean;
  returnTotalCount: boolean;
  namePattern?: string | null;
}

/**
 * Projects the actor may see: all for a global admin; else its own memberships plus, with
 * `includeNotJoined`, public ones. Members and backends are empty in list results.
 */
export async function listProjects(
  ctx: CoreContext,
  actor: UserRecord,
  query: ListProjectsQuery,
): Promise<Project[] | ProjectsInfoList> {
  const all = await ctx.store.find('projects', { where: { deleted: false } });
  let visible = all;

  if (!isGlobalAdmin(actor)) {
    const memberships = await ctx.store.find('members', { where: { userId: actor.id } });
    const joined = new Set(memberships.map((member) => member.projectId));
    visible = all.filter(
      (project) => joined.has(project.id) || (query.includeNotJoined && project.isPublic),
    );
  }

  if (query.namePattern) {
    const needle = query.namePattern.toLowerCase();
    visible = visible.filter((project) => project.name.toLowerCase().includes(needle));
  }

  const page = keysetPage(visible, query, (project) => project.createdAt, (project) => project.id);
  const projects = await listWithOwners(ctx, page);

  return query.returnTotalCount ? { total_count: visible.length, projects } : projects;
}

/** Projects the actor is a member of that have no non-deleted fleet, oldest first. */
export async function listProjectsWithoutFleets(
  ctx: CoreContext,
  actor: UserRecord,
): Promise<Project[]> {
  const memberships = await ctx.store.find('members', { where: { userId: actor.id } });
  const projects = await ctx.store.find('projects', {
    where: { id: { in: memberships.map((member) => member.projectId) }, deleted: false },
    orderBy: [['createdAt', 'asc']],
  });
  const empty: ProjectRecord[] = [];

  // TODO: count fleets imported from other projects once exports/imports exist.
  for (const project of projects) {
    if ((await ctx.store.count('fleets', { projectId: project.id, deleted: false })) === 0) {
      empty.push(project);
    }
  }

  return listWithOwners(ctx, empty);
}

/**
 * Soft-deletes projects. A non-admin must be a member and the owner or a project admin of
 * each (403 otherwise, also for unknown names); active runs or fleets block it (400).
 */
export async function deleteProjects(
  ctx: CoreContext,
  actor: UserRecord,
  projectNames: readonly string[],
): Promise<void> {
  await ctx.store.transaction(async (tx) => {
    const projects = await tx.find('projects', {
      where: { name: { in: projectNames }, deleted: false },
    });
    const byName = new Map(projects.map((project) => [project.name, project]));

    for (const name of projectNames) {
      const project = byName.get(name);

      if (isGlobalAdmin(actor)) {
        if (project === undefined) {
          throw new ServerClientError('Failed to delete non-existent projects');
        }

        continue;
      }

      const member = project === undefined ? undefined : await findMember(tx, project.id, actor.id);

      if (project === undefined || member === undefined) {
        throw new ForbiddenError();
      }

      if (project.ownerId !== actor.id && !isProjectAdmin(actor, member.projectRole)) {
        throw new ForbiddenError();
      }
    }

    const busy: string[] = [];

    for (const project of projects) {
      const runs = await tx.count('runs', {
        projectId: project.id,
        deleted: false,
        status: { notIn: finishedRunStatuses },
      });
      const fleets = await tx.count('fleets', { projectId: project.id, deleted: false });

      if (runs > 0 || fleets > 0) {
        busy.push(project.name);
      }
    }

    if (busy.length > 0) {
      throw new ServerClientError(
        `Failed to delete project with active runs/fleets/volumes: [${busy.join(', ')}]`,
      );
    }

    for (const project of projects) {
      await tx.update(
        'projects',
        { id: project.id },
        { deleted: true, originalName: project.name, name: deletedName(ctx.now()) },
      );
      await recordEvent(ctx, tx, 'Project deleted', actor, [eventTarget.project(project)]);
    }
  });

  ctx.logger.info({ projectNames }, 'projects deleted');
}

/** What `projects/{p}/update` takes; null fields stay as they are. */
export interface UpdateProjectInput {
  isPublic?: boolean | null;
  templatesRepo?: string | null;
  resetTemplatesRepo?: boolean;
}

/** Changes a project's visibility or templates repo. */
export async function updateProject(
  ctx: CoreContext,
  project: ProjectRecord,
  input: UpdateProjectInput,
): Promise<ProjectRecord> {
  const patch: Partial<ProjectRecord> = {};

  if (input.isPublic !== null && input.isPublic !== undefined) {
    patch.isPublic = input.isPublic;
  }

  // TODO: check that the templates repo can be cloned (400 with the git message) once
  // templates are served; until then the URL is stored as given.
  if (input.resetTemplatesRepo) {
    patch.templatesRepo = null;
  } else if (typeof input.templatesRepo === 'string' && input.templatesRepo.trim() !== '') {
    patch.templatesRepo = input.templatesRepo.trim();
  }

  if (Object.keys(patch).length > 0) {
    await ctx.store.update('projects', { id: project.id }, patch);
  }

  return { ...project, ...patch };
}
