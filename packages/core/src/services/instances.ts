import type { CoreContext } from '../context.js';
import type { Instance } from '../domain/instance.js';
import { instanceToWire } from '../domain/instance.js';
import { ResourceNotExistsError } from '../errors/server-errors.js';
import type { InstanceRecord, ProjectRecord } from '../records.js';

/** The filters of `instances/list`, projects already narrowed to what the caller may see. */
export interface ListInstancesRequest {
  projectIds: readonly string[];
  fleetIds: readonly string[] | null;
  onlyActive: boolean;
  prevCreatedAt: number | null;
  prevId: string | null;
  limit: number;
  ascending: boolean;
}

async function toWire(ctx: CoreContext, instances: readonly InstanceRecord[]): Promise<Instance[]> {
  const projects = new Map<string, string>();
  const fleets = new Map<string, string | null>();

  for (const instance of instances) {
    if (!projects.has(instance.projectId)) {
      const project = await ctx.store.get('projects', instance.projectId);
      projects.set(instance.projectId, project?.name ?? '');
    }

    if (instance.fleetId !== null && !fleets.has(instance.fleetId)) {
      fleets.set(instance.fleetId, (await ctx.store.get('fleets', instance.fleetId))?.name ?? null);
    }
  }

  return instances.map((instance) =>
    instanceToWire(
      instance,
      projects.get(instance.projectId)!,
      instance.fleetId === null ? null : (fleets.get(instance.fleetId) ?? null),
    ),
  );
}

/** Instances newest first (keyset on created, id); `onlyActive` keeps idle and busy ones. */
export async function listInstances(
  ctx: CoreContext,
  request: ListInstancesRequest,
): Promise<Instance[]> {
  if (request.projectIds.length === 0 || request.limit === 0) {
    return [];
  }

  const where: Record<string, unknown> = { projectId: { in: request.projectIds } };

  if (request.fleetIds !== null) {
    where.fleetId = { in: request.fleetIds };
  }

  if (request.onlyActive) {
    where.deleted = false;
    where.status = { in: ['idle', 'busy'] };
  }

  if (request.prevCreatedAt !== null) {
    const or: Record<string, unknown>[] = [
      { createdAt: { [request.ascending ? 'gt' : 'lt']: request.prevCreatedAt } },
    ];

    if (request.prevId !== null) {
      or.push({
        createdAt: request.prevCreatedAt,
        id: { [request.ascending ? 'lt' : 'gt']: request.prevId },
      });
    }

    where.$or = or;
  }

  const instances = await ctx.store.find('instances', {
    where: where as never,
    orderBy: request.ascending
      ? [['createdAt', 'asc'], ['id', 'desc']]
      : [['createdAt', 'desc'], ['id', 'asc']],
    limit: request.limit,
  });

  return toWire(ctx, instances);
}

/** One instance of the project by id. */
export async function getInstance(
  ctx: CoreContext,
  project: ProjectRecord,
  id: string,
): Promise<Instance> {
  const instance = await ctx.store.findOne('instances', { where: { id, projectId: project.id } });

  if (instance === undefined) {
    throw new ResourceNotExistsError('Instance not found');
  }

  return (await toWire(ctx, [instance]))[0]!;
}
