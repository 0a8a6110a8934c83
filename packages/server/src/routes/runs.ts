import { isDeepStrictEqual } from 'node:util';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import {
  applyRunPlan,
  clientVersionForPatches,
  deleteRuns,
  getRun,
  getRunPlan,
  listRuns,
  parseWireTime,
  patchRunSpecForClient,
  RepoDoesNotExistError,
  ServerClientError,
  stopRuns,
  visibleProjects,
} from '@dstack/core';
import type {
  CoreContext,
  ParsedRunSpec,
  ProjectRecord,
  Run,
  RunPlan,
  RunSpec,
} from '@dstack/core';
import { parseBody, requireProject, requireUser } from '../http/index.js';
import type { RouteDeps } from './route-deps.js';

const nullableString = { type: ['string', 'null'], default: null } as const;
const nullableTime = { type: ['string', 'null'], format: 'date-time', default: null } as const;

const listSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    project_name: nullableString,
    repo_id: nullableString,
    username: nullableString,
    only_active: { type: 'boolean', default: false },
    include_jobs: { type: 'boolean', default: true },
    job_submissions_limit: { type: ['integer', 'null'], minimum: 0, maximum: 10, default: null },
    prev_submitted_at: nullableTime,
    prev_run_id: { type: ['string', 'null'], format: 'uuid', default: null },
    limit: { type: 'integer', minimum: 0, maximum: 100, default: 100 },
    ascending: { type: 'boolean', default: false },
  },
};

const getSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    run_name: nullableString,
    id: { type: ['string', 'null'], format: 'uuid4', default: null },
  },
};

const planSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['run_spec'],
  properties: {
    run_spec: { type: 'object' },
    max_offers: { type: ['integer', 'null'], minimum: 1, maximum: 10_000, default: null },
    full_offers: { type: 'boolean', default: false },
    unallocated_resources: { type: 'boolean', default: false },
    for_offers_only: { type: 'boolean', default: false },
  },
};

const applySchema = {
  type: 'object',
  additionalProperties: false,
  required: ['plan', 'force'],
  properties: {
    plan: {
      type: 'object',
      additionalProperties: false,
      required: ['run_spec'],
      properties: {
        run_spec: { type: 'object' },
        current_resource: { type: ['object', 'null'], default: null },
      },
    },
    force: { type: 'boolean' },
  },
};

const namesSchema = (extra: Record<string, unknown> = {}, required: string[] = []) => ({
  type: 'object',
  additionalProperties: false,
  required: ['runs_names', ...required],
  properties: { runs_names: { type: 'array', items: { type: 'string' } }, ...extra },
});

const stopSchema = namesSchema({ abort: { type: 'boolean' } }, ['abort']);
const deleteSchema = namesSchema();

interface ListBody {
  project_name: string | null;
  repo_id: string | null;
  username: string | null;
  only_active: boolean;
  include_jobs: boolean;
  job_submissions_limit: number | null;
  prev_submitted_at: string | null;
  prev_run_id: string | null;
  limit: number;
  ascending: boolean;
}

/** The client's `X-API-VERSION` as sent; the version check has already accepted it. */
export function clientApiVersion(request: FastifyRequest): string | undefined {
  const header = request.headers['x-api-version'];
  return Array.isArray(header) ? header[0] : header;
}

/** Sets profile `fleets` left out of an older stored spec to null, as the patches expect. */
function withFleetsKeys(spec: RunSpec): RunSpec {
  const profile = spec.profile as Record<string, unknown> | null | undefined;

  return {
    ...spec,
    configuration: { ...spec.configuration, fleets: spec.configuration.fleets ?? null },
    profile: profile === null || profile === undefined
      ? null
      : { ...profile, fleets: profile.fleets ?? null },
  };
}

/** A run spec shaped for the client that sent `version` (§6); unchanged for dev clients. */
export function patchRunSpec(spec: RunSpec, version: string | undefined): RunSpec {
  if (clientVersionForPatches(version) === null) {
    return spec;
  }

  const parsed = withFleetsKeys(spec) as unknown as ParsedRunSpec;
  return patchRunSpecForClient(parsed, version) as unknown as RunSpec;
}

function patchRun(run: Run, version: string | undefined): Run {
  return { ...run, run_spec: patchRunSpec(run.run_spec, version) };
}

/** The plan's `run_spec` echoes what the client sent, so only the server's specs are patched. */
function patchPlan(plan: RunPlan, version: string | undefined): RunPlan {
  return {
    ...plan,
    effective_run_spec: patchRunSpec(plan.effective_run_spec, version),
    current_resource: plan.current_resource === null
      ? null
      : patchRun(plan.current_resource, version),
  };
}

/**
 * The `current_resource` an older client sends back carries the spec as patched for it; when
 * it is the stored run's spec so patched, the stored spec stands in so apply sees no change.
 */
async function unpatchedCurrent(
  ctx: CoreContext,
  project: ProjectRecord,
  current: Run | null,
  version: string | undefined,
): Promise<Run | null> {
  if (current === null || clientVersionForPatches(version) === null) {
    return current;
  }

  const stored = await getRun(ctx, project, { runName: null, id: current.id }).catch(() => null);

  if (stored === null || !isDeepStrictEqual(patchRunSpec(stored.run_spec, version),
    current.run_spec)) {
    return current;
  }

  return { ...current, run_spec: stored.run_spec };
}

/** Runs: plan, apply, list, get, stop, delete; and the backend types a plan can use. */
export function registerRunsRoutes(app: FastifyInstance, deps: RouteDeps): void {
  const { ctx } = deps;

  app.post('/api/backends/list_types', async () =>
    [...ctx.providers.keys()].filter((type) => type !== 'remote' && type !== 'dstack').sort(),
  );

  app.post('/api/runs/list', async (request) => {
    const user = await requireUser(request);
    const body = parseBody<ListBody>(request, listSchema);

    if (body.repo_id !== null && body.project_name === null) {
      return [];
    }

    const projects = await visibleProjects(ctx, user, body.project_name);
    let userId: string | null = null;
    let repoRowId: string | null | undefined;

    if (body.username !== null) {
      const owner = await ctx.store.findOne('users', {
        where: { name: body.username, deleted: false },
      });

      if (owner === undefined) {
        throw new ServerClientError('User not found');
      }

      userId = owner.id;
    }

    if (body.repo_id !== null && projects.length > 0) {
      const repo = await ctx.store.findOne('repos', {
        where: { projectId: projects[0]!.id, name: body.repo_id },
      });

      if (repo === undefined && body.repo_id !== 'none') {
        throw new RepoDoesNotExistError(body.repo_id);
      }

      repoRowId = repo?.id ?? null;
    }

    const runs = await listRuns(ctx, {
      projectIds: projects.map((project) => project.id),
      repoRowId,
      userId,
      onlyActive: body.only_active,
      includeJobs: body.include_jobs,
      submissionsLimit: body.job_submissions_limit ?? 10,
      prevSubmittedAt: body.prev_submitted_at === null
        ? null
        : parseWireTime(body.prev_submitted_at),
      prevRunId: body.prev_run_id?.toLowerCase() ?? null,
      limit: body.limit,
      ascending: body.ascending,
    });

    return runs.map((run) => patchRun(run, clientApiVersion(request)));
  });

  app.post('/api/project/:project_name/runs/get', async (request) => {
    const { project } = await requireProject(request, 'member');
    const body = parseBody<{ run_name: string | null; id: string | null }>(request, getSchema);

    const run = await getRun(ctx, project, {
      runName: body.run_name,
      id: body.id?.toLowerCase() ?? null,
    });

    return patchRun(run, clientApiVersion(request));
  });

  app.post('/api/project/:project_name/runs/get_plan', async (request) => {
    const { project, user } = await requireProject(request, 'member');
    const body = parseBody<{ run_spec: unknown; max_offers: number | null }>(request, planSchema);

    // TODO: for_offers_only (and isOffersOnlyPlan for pre-0.21.0 clients) changes nothing in
    // the plan yet; it matters once offers-only plans skip the run-name and active-run checks.
    const plan = await getRunPlan(ctx, { project, user }, body.run_spec, {
      maxOffers: body.max_offers,
    });

    return patchPlan(plan, clientApiVersion(request));
  });

  app.post('/api/project/:project_name/runs/apply', async (request) => {
    const { project, user } = await requireProject(request, 'member');
    const body = parseBody<{
      plan: { run_spec: unknown; current_resource: Run | null };
      force: boolean;
    }>(request, applySchema);

    const version = clientApiVersion(request);
    const current = await unpatchedCurrent(ctx, project, body.plan.current_resource, version);
    const run = await applyRunPlan(ctx, { project, user }, {
      runSpec: body.plan.run_spec,
      currentResource: current,
      force: body.force,
    });

    return patchRun(run, version);
  });

  app.post('/api/project/:project_name/runs/stop', async (request) => {
    const { project, user } = await requireProject(request, 'member');
    const body = parseBody<{ runs_names: string[]; abort: boolean }>(request, stopSchema);

    await stopRuns(ctx, project, body.runs_names, body.abort, user);
    return null;
  });

  app.post('/api/project/:project_name/runs/delete', async (request) => {
    const { project, user } = await requireProject(request, 'member');
    const body = parseBody<{ runs_names: string[] }>(request, deleteSchema);

    await deleteRuns(ctx, project, body.runs_names, user);
    return null;
  });
}
