import type { FastifyInstance } from 'fastify';
import {
  addProjectMembers,
  createProject,
  deleteProjects,
  getProject,
  listProjects,
  listProjectsWithoutFleets,
  removeProjectMembers,
  setProjectMembers,
  updateProject,
} from '@dstack/core';
import type { MemberSetting, ProjectRole } from '@dstack/core';
import { parseBody, requireProject, requireUser } from '../http/index.js';
import { keysetProperties, keysetQueryOf } from './list-query.js';
import type { KeysetBody } from './list-query.js';
import type { RouteDeps } from './route-deps.js';

const listSchema = {
  type: 'object',
  additionalProperties: false,
  properties: { include_not_joined: { type: 'boolean', default: true }, ...keysetProperties },
};

const createSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['project_name'],
  properties: {
    project_name: { type: 'string' },
    is_public: { type: 'boolean', default: false },
    templates_repo: { type: ['string', 'null'], default: null },
  },
};

const deleteSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['projects_names'],
  properties: { projects_names: { type: 'array', items: { type: 'string' } } },
};

const membersSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['members'],
  properties: {
    members: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['username', 'project_role'],
        properties: {
          username: { type: 'string' },
          project_role: { enum: ['admin', 'manager', 'user'] },
        },
      },
    },
  },
};

const removeMembersSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['usernames'],
  properties: { usernames: { type: 'array', items: { type: 'string' } } },
};

const updateSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    is_public: { type: ['boolean', 'null'], default: null },
    templates_repo: { type: ['string', 'null'], default: null },
    reset_templates_repo: { type: 'boolean', default: false },
  },
};

interface MembersBody {
  members: { username: string; project_role: ProjectRole }[];
}

function memberSettings(body: MembersBody): MemberSetting[] {
  return body.members.map((member) => ({
    username: member.username,
    projectRole: member.project_role,
  }));
}

/** `/api/projects/*` (§3.3): listing, creating and deleting projects, and their members. */
export function registerProjectsRoutes(app: FastifyInstance, deps: RouteDeps): void {
  const { ctx } = deps;

  app.post('/api/projects/list', async (request) => {
    const actor = await requireUser(request);
    const body = parseBody<KeysetBody & { include_not_joined: boolean }>(request, listSchema, {
      optional: true,
    });
    return listProjects(ctx, actor, {
      ...keysetQueryOf(body),
      includeNotJoined: body.include_not_joined,
    });
  });

  app.post('/api/projects/list_only_no_fleets', async (request) => {
    return listProjectsWithoutFleets(ctx, await requireUser(request));
  });

  app.post('/api/projects/create', async (request) => {
    const actor = await requireUser(request);
    const body = parseBody<{
      project_name: string;
      is_public: boolean;
      templates_repo: string | null;
    }>(request, createSchema);
    const project = await createProject(ctx, actor, {
      projectName: body.project_name,
      isPublic: body.is_public,
      templatesRepo: body.templates_repo,
    });
    return getProject(ctx, project);
  });

  app.post('/api/projects/delete', async (request) => {
    const actor = await requireUser(request);
    const body = parseBody<{ projects_names: string[] }>(request, deleteSchema);
    await deleteProjects(ctx, actor, body.projects_names);
    return null;
  });

  app.post('/api/projects/:project_name/get', async (request) => {
    const { project } = await requireProject(request, 'memberOrPublic');
    return getProject(ctx, project);
  });

  app.post('/api/projects/:project_name/set_members', async (request) => {
    const { user, project } = await requireProject(request, 'manager');
    const body = parseBody<MembersBody>(request, membersSchema);
    await setProjectMembers(ctx, user, project, memberSettings(body));
    return getProject(ctx, project);
  });

  app.post('/api/projects/:project_name/add_members', async (request) => {
    const { user, project } = await requireProject(request, 'managerOrPublic');
    const body = parseBody<MembersBody>(request, membersSchema);
    await addProjectMembers(ctx, user, project, memberSettings(body));
    return getProject(ctx, project);
  });

  app.post('/api/projects/:project_name/remove_members', async (request) => {
    const { user, project } = await requireProject(request, 'managerOrSelfLeave');
    const body = parseBody<{ usernames: string[] }>(request, removeMembersSchema);
    await removeProjectMembers(ctx, user, project, body.usernames);
    return getProject(ctx, project);
  });

  app.post('/api/projects/:project_name/update', async (request) => {
    const { project } = await requireProject(request, 'admin');
    const body = parseBody<{
      is_public: boolean | null;
      templates_repo: string | null;
      reset_templates_repo: boolean;
    }>(request, updateSchema);
    const updated = await updateProject(ctx, project, {
      isPublic: body.is_public,
      templatesRepo: body.templates_repo,
      resetTemplatesRepo: body.reset_templates_repo,
    });
    return getProject(ctx, updated);
  });
}
