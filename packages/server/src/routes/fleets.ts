import type { FastifyInstance } from 'fastify';
import {
  applyFleetPlan,
  canManageSshFleets,
  clientVersionForPatches,
  deleteFleetInstances,
  deleteFleets,
  ForbiddenError,
  getFleet,
  getFleetPlan,
  isSshFleet,
  listFleets,
  listProjectFleets,
  parseFleetSpec,
  parseWireTime,
  patchFleetSpecForClient,
  visibleProjects,
} from '@dstack/core';
import type { CoreContext, Fleet, FleetPlan, FleetSpec, ParsedFleetSpec } from '@dstack/core';
import { parseBody, requireProject, requireUser } from '../http/index.js';
import type { ProjectScope } from '../http/index.js';
import type { RouteDeps } from './route-deps.js';
import { clientApiVersion } from './runs.js';

const listSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    project_name: { type: ['string', 'null'], default: null },
    only_active: { type: 'boolean', default: false },
    include_imported: { type: 'boolean', default: false },
    prev_created_at: { type: ['string', 'null'], format: 'date-time', default: null },
    prev_id: { type: ['string', 'null'], format: 'uuid', default: null },
    limit: { type: 'integer', minimum: 0, maximum: 100, default: 100 },
    ascending: { type: 'boolean', default: false },
  },
};

const projectListSchema = {
  type: 'object',
  additionalProperties: false,
  properties: { include_imported: { type: 'boolean', default: false } },
};

const getSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    name: { type: ['string', 'null'], default: null },
    id: { type: ['string', 'null'], format: 'uuid', default: null },
  },
};

const planSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['spec'],
  properties: { spec: { type: 'object' } },
};

const applySchema = {
  type: 'object',
  additionalProperties: false,
  required: ['plan', 'force'],
  properties: {
    plan: {
      type: 'object',
      additionalProperties: false,
      required: ['spec'],
      properties: {
        spec: { type: 'object' },
        current_resource: { type: ['object', 'null'], default: null },
      },
    },
    force: { type: 'boolean' },
  },
};

const deleteSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['names'],
  properties: { names: { type: 'array', items: { type: 'string' } } },
};

const deleteInstancesSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'instance_nums'],
  properties: {
    name: { type: 'string' },
    instance_nums: { type: 'array', items: { type: 'integer' } },
  },
};

function checkSshPermission(ctx: CoreContext, scope: ProjectScope, spec: FleetSpec): void {
  const role = scope.member?.projectRole ?? null;

  if (isSshFleet(spec) && !canManageSshFleets(scope.user, role, ctx.settings.defaultPermissions)) {
    throw new ForbiddenError();
  }
}

async function checkSshDelete(ctx: CoreContext, scope: ProjectScope, names: string[]) {
  for (const name of names) {
    const fleet = await ctx.store.findOne('fleets', {
      where: { projectId: scope.project.id, name, deleted: false },
    });

    if (fleet !== undefined) {
      checkSshPermission(ctx, scope, fleet.spec as FleetSpec);
    }
  }
}

/** A fleet spec shaped for the client that sent `version` (§6); unchanged for dev clients. */
function patchFleetSpec(spec: FleetSpec, version: string | undefined): FleetSpec {
  const profile = spec.profile as Record<string, unknown> | null | undefined;

  // Only profile `fleets` references change; a spec without any has nothing to patch.
  if (clientVersionForPatches(version) === null || !Array.isArray(profile?.fleets)) {
    return spec;
  }

  return patchFleetSpecForClient(spec as unknown as ParsedFleetSpec, version) as unknown as
    FleetSpec;
}

function patchFleet(fleet: Fleet, version: string | undefined): Fleet {
  return { ...fleet, spec: patchFleetSpec(fleet.spec, version) };
}

/** The plan's `spec` echoes what the client sent, so only the server's specs are patched. */
function patchFleetPlan(plan: FleetPlan, version: string | undefined): FleetPlan {
  return {
    ...plan,
    effective_spec: patchFleetSpec(plan.effective_spec, version),
    current_resource: plan.current_resource === null
      ? null
      : patchFleet(plan.current_resource, version),
  };
}

/** Fleets: plan, apply, list (global and per project), get, delete, delete instances. */
export function registerFleetsRoutes(app: FastifyInstance, deps: RouteDeps): void {
  const { ctx } = deps;

  app.post('/api/fleets/list', async (request) => {
    const user = await requireUser(request);
    const body = parseBody<{
      project_name: string | null;
      only_active: boolean;
      prev_created_at: string | null;
      prev_id: string | null;
      limit: number;
      ascending: boolean;
    }>(request, listSchema);
    const projects = await visibleProjects(ctx, user, body.project_name);

    const fleets = await listFleets(ctx, {
      projectIds: projects.map((project) => project.id),
      onlyActive: body.only_active,
      prevCreatedAt: body.prev_created_at === null ? null : parseWireTime(body.prev_created_at),
      prevId: body.prev_id?.toLowerCase() ?? null,
      limit: body.limit,
      ascending: body.ascending,
    });

    return fleets.map((fleet) => patchFleet(fleet, clientApiVersion(request)));
  });

  app.post('/api/project/:project_name/fleets/list', async (request) => {
    const { project } = await requireProject(request, 'member');
    parseBody(request, projectListSchema, { optional: true });

    const fleets = await listProjectFleets(ctx, project);
    return fleets.map((fleet) => patchFleet(fleet, clientApiVersion(request)));
  });

  app.post('/api/project/:project_name/fleets/get', async (request) => {
    const { project } = await requireProject(request, 'member');
    const body = parseBody<{ name: string | null; id: string | null }>(request, getSchema);

    const fleet = await getFleet(ctx, project, {
      name: body.name,
      id: body.id?.toLowerCase() ?? null,
    });

    return patchFleet(fleet, clientApiVersion(request));
  });

  app.post('/api/project/:project_name/fleets/get_plan', async (request) => {
    const scope = await requireProject(request, 'member');
    const body = parseBody<{ spec: unknown }>(request, planSchema);
    const spec = parseFleetSpec(body.spec) as unknown as FleetSpec;

    checkSshPermission(ctx, scope, spec);
    return patchFleetPlan(await getFleetPlan(ctx, scope, spec), clientApiVersion(request));
  });

  app.post('/api/project/:project_name/fleets/apply', async (request) => {
    const scope = await requireProject(request, 'member');
    const body = parseBody<{
      plan: { spec: unknown; current_resource: Fleet | null };
      force: boolean;
    }>(request, applySchema);
    const spec = parseFleetSpec(body.plan.spec) as unknown as FleetSpec;

    checkSshPermission(ctx, scope, spec);
    const fleet = await applyFleetPlan(ctx, scope, {
      spec,
      currentResource: body.plan.current_resource,
      force: body.force,
    });

    return patchFleet(fleet, clientApiVersion(request));
  });

  app.post('/api/project/:project_name/fleets/delete', async (request) => {
    const scope = await requireProject(request, 'member');
    const body = parseBody<{ names: string[] }>(request, deleteSchema);

    await checkSshDelete(ctx, scope, body.names);
    await deleteFleets(ctx, scope.project, body.names, scope.user);
    return null;
  });

  app.post('/api/project/:project_name/fleets/delete_instances', async (request) => {
    const scope = await requireProject(request, 'member');
    const body = parseBody<{ name: string; instance_nums: number[] }>(
      request,
      deleteInstancesSchema,
    );

    await checkSshDelete(ctx, scope, [body.name]);
    await deleteFleetInstances(ctx, scope.project, body.name, body.instance_nums);
    return null;
  });
}
