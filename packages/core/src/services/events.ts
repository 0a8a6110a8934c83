import type { CoreContext } from '../context.js';
import type { CoreSettings } from '../settings.js';
import type {
  StoredEventTarget,
  WireEvent,
  WireEventTarget,
} from '../domain/event.js';
import type { StateAccess, Where } from '../ports/state-store.js';
import type {
  EventRecord,
  FleetRecord,
  InstanceRecord,
  JobRecord,
  ProjectRecord,
  RunRecord,
  SecretRecord,
  UserRecord,
} from '../records.js';
import { newId } from '../util/ids.js';
import { toWireTime } from '../util/time.js';
import { isGlobalAdmin } from './access.js';

/** What an event targets, built from the record it is about. */
export const eventTarget = {
  user: (user: Pick<UserRecord, 'id' | 'name'>): StoredEventTarget =>
    ({ type: 'user', projectId: null, id: user.id, name: user.name }),
  project: (project: Pick<ProjectRecord, 'id' | 'name'>): StoredEventTarget =>
    ({ type: 'project', projectId: project.id, id: project.id, name: project.name }),
  fleet: (fleet: Pick<FleetRecord, 'id' | 'projectId' | 'name'>): StoredEventTarget =>
    ({ type: 'fleet', projectId: fleet.projectId, id: fleet.id, name: fleet.name }),
  instance: (instance: Pick<InstanceRecord, 'id' | 'projectId' | 'name'>): StoredEventTarget =>
    ({ type: 'instance', projectId: instance.projectId, id: instance.id, name: instance.name }),
  run: (run: Pick<RunRecord, 'id' | 'projectId' | 'runName'>): StoredEventTarget =>
    ({ type: 'run', projectId: run.projectId, id: run.id, name: run.runName }),
  job: (job: Pick<JobRecord, 'id' | 'projectId' | 'jobName'>): StoredEventTarget =>
    ({ type: 'job', projectId: job.projectId, id: job.id, name: job.jobName }),
  secret: (secret: Pick<SecretRecord, 'id' | 'projectId' | 'name'>): StoredEventTarget =>
    ({ type: 'secret', projectId: secret.projectId, id: secret.id, name: secret.name }),
};

/** What recording an event needs of the core context. */
type EventContext = Pick<CoreContext, 'now' | 'logger'> & {
  settings?: Pick<CoreSettings, 'eventsTtlSeconds'>;
};

/**
 * Records an event: a past-tense message ("Run submitted") about one or more targets, by a
 * user or (actor null) the system. Pass the transaction of the change it describes.
 */
export async function recordEvent(
  ctx: EventContext,
  access: StateAccess,
  message: string,
  actor: Pick<UserRecord, 'id'> | null,
  targets: readonly StoredEventTarget[],
): Promise<void> {
  const text = message.trim().replace(/\.+$/, '').replace(/\n/g, ' ');

  if (text === '' || targets.length === 0) {
    throw new Error('an event needs a message and at least one target');
  }

  // A TTL of 0 turns event storage off, as in the original; the log line still tells.
  if (ctx.settings?.eventsTtlSeconds !== 0) {
    await access.insert('events', {
      id: newId(),
      message: text,
      recordedAt: ctx.now(),
      actorUserId: actor?.id ?? null,
      targets: targets.map((target) => ({ ...target })),
    });
  }

  const names = targets.map((target) => `${target.type} ${target.name}`);
  ctx.logger.info({ event: text, targets: names, actorUserId: actor?.id ?? null }, 'event');
}

/** The filters of `/api/events/list`; null means "not set". */
export interface ListEventsRequest {
  targetProjects: string[] | null;
  targetUsers: string[] | null;
  targetFleets: string[] | null;
  targetInstances: string[] | null;
  targetRuns: string[] | null;
  targetJobs: string[] | null;
  targetVolumes?: string[] | null;
  targetGateways?: string[] | null;
  targetSecrets?: string[] | null;
  withinProjects: string[] | null;
  withinFleets: string[] | null;
  withinRuns: string[] | null;
  /** Wire target types; those no event is recorded for yet (volume, ...) match nothing. */
  includeTargetTypes: string[] | null;
  /** User ids; a null item stands for the system. */
  actors: (string | null)[] | null;
  prevRecordedAt: number | null;
  prevId: string | null;
  limit: number;
  ascending: boolean;
}

type TargetFilter = (target: StoredEventTarget) => boolean;

const targetFilterFields = [
  ['targetProjects', 'project'],
  ['targetUsers', 'user'],
  ['targetFleets', 'fleet'],
  ['targetInstances', 'instance'],
  ['targetRuns', 'run'],
  ['targetJobs', 'job'],
  ['targetVolumes', 'volume'],
  ['targetGateways', 'gateway'],
  ['targetSecrets', 'secret'],
] as const;

function ofType(type: string, ids: readonly string[]): TargetFilter {
  const wanted = new Set(ids);

  return (target) => target.type === type && wanted.has(target.id);
}

async function accessFilter(
  access: StateAccess,
  user: Pick<UserRecord, 'id' | 'globalRole'>,
): Promise<TargetFilter | null> {
  if (isGlobalAdmin(user)) {
    return null;
  }

  const memberships = await access.find('members', { where: { userId: user.id } });
  const projects = new Set(memberships.map((member) => member.projectId));

  return (target) => (target.projectId !== null && projects.has(target.projectId))
    || (target.projectId === null && target.type === 'user' && target.id === user.id);
}

/** Every condition one target of an event has to meet for the event to be listed. */
async function targetFilters(
  access: StateAccess,
  user: Pick<UserRecord, 'id' | 'globalRole'>,
  request: ListEventsRequest,
): Promise<TargetFilter[]> {
  const filters: TargetFilter[] = [];
  const visible = await accessFilter(access, user);

  if (visible !== null) {
    filters.push(visible);
  }

  for (const [field, type] of targetFilterFields) {
    const ids = request[field] ?? null;

    if (ids !== null) {
      filters.push(ofType(type, ids));
    }
  }

  if (request.withinProjects !== null) {
    const projects = new Set(request.withinProjects);
    filters.push((target) => target.projectId !== null && projects.has(target.projectId));
  }

  if (request.withinFleets !== null) {
    const instances = await access.find('instances', {
      where: { fleetId: { in: request.withinFleets } },
    });
    const fleet = ofType('fleet', request.withinFleets);
    const instance = ofType('instance', instances.map((row) => row.id));
    filters.push((target) => fleet(target) || instance(target));
  }

  if (request.withinRuns !== null) {
    const jobs = await access.find('jobs', { where: { runId: { in: request.withinRuns } } });
    const run = ofType('run', request.withinRuns);
    const job = ofType('job', jobs.map((row) => row.id));
    filters.push((target) => run(target) || job(target));
  }

  if (request.includeTargetTypes !== null) {
    const types = new Set<string>(request.includeTargetTypes);
    filters.push((target) => types.has(target.type));
  }

  return filters;
}

function keysetWhere(
  prevRecordedAt: number | null,
  prevId: string | null,
  ascending: boolean,
): Where<EventRecord> {
  if (prevRecordedAt === null) {
    return {};
  }

  const after = ascending ? { gt: prevRecordedAt } : { lt: prevRecordedAt };

  if (prevId === null) {
    return { recordedAt: after };
  }

  const tie = ascending ? { lt: prevId } : { gt: prevId };
  return { $or: [{ recordedAt: after }, { recordedAt: prevRecordedAt, id: tie }] };
}

function matchesActors(event: EventRecord, actors: (string | null)[] | null): boolean {
  return actors === null || actors.includes(event.actorUserId);
}

// Targets live in a JSON column, so their filters run here over pages of events.
// TODO: an event_targets table with indexes, once event volume makes these scans slow.
const scanBatchSize = 500;

async function findEvents(
  access: StateAccess,
  filters: readonly TargetFilter[],
  request: ListEventsRequest,
): Promise<EventRecord[]> {
  const found: EventRecord[] = [];
  const orderBy = request.ascending
    ? [['recordedAt', 'asc'], ['id', 'desc']] as const
    : [['recordedAt', 'desc'], ['id', 'asc']] as const;
  let cursor = { recordedAt: request.prevRecordedAt, id: request.prevId };

  for (;;) {
    const batch = await access.find('events', {
      where: keysetWhere(cursor.recordedAt, cursor.id, request.ascending),
      orderBy,
      limit: scanBatchSize,
    });

    for (const event of batch) {
      const targets = event.targets as StoredEventTarget[];

      if (
        matchesActors(event, request.actors)
        && (filters.length === 0 || targets.some((t) => filters.every((keep) => keep(t))))
      ) {
        found.push(event);

        if (found.length === request.limit) {
          return found;
        }
      }
    }

    const last = batch[batch.length - 1];

    if (batch.length < scanBatchSize || last === undefined) {
      return found;
    }

    cursor = { recordedAt: last.recordedAt, id: last.id };
  }
}

async function toWireEvents(access: StateAccess, events: EventRecord[]): Promise<WireEvent[]> {
  const targetsOf = (event: EventRecord): StoredEventTarget[] =>
    event.targets as StoredEventTarget[];
  const projectIds = [...new Set(events.flatMap((event) =>
    targetsOf(event).map((target) => target.projectId).filter((id) => id !== null)))];
  const userIds = [...new Set(events.map((event) => event.actorUserId)
    .filter((id) => id !== null))];
  const projects = new Map((await access.find('projects', { where: { id: { in: projectIds } } }))
    .map((project) => [project.id, project]));
  const users = new Map((await access.find('users', { where: { id: { in: userIds } } }))
    .map((user) => [user.id, user]));

  return events.map((event) => {
    const actor = event.actorUserId === null ? undefined : users.get(event.actorUserId);
    const targets = targetsOf(event).map((target): WireEventTarget => {
      const project = target.projectId === null ? undefined : projects.get(target.projectId);

      return {
        type: target.type,
        project_id: target.projectId,
        project_name: project === undefined ? null : (project.originalName ?? project.name),
        is_project_deleted: project === undefined ? null : project.deleted,
        id: target.id,
        name: target.name,
      };
    });

    return {
      id: event.id,
      message: event.message,
      recorded_at: toWireTime(event.recordedAt),
      actor_user_id: event.actorUserId,
      actor_user: actor === undefined ? null : (actor.originalName ?? actor.name),
      is_actor_user_deleted: actor === undefined ? null : actor.deleted,
      targets,
    };
  });
}

/**
 * Events the user may see (a global admin: all; others: those with a target in one of
 * their projects, or themselves), filtered and paged by (recorded_at, id) as §5 describes.
 * Every condition on targets has to hold for one and the same target.
 */
export async function listEvents(
  ctx: CoreContext,
  user: Pick<UserRecord, 'id' | 'globalRole'>,
  request: ListEventsRequest,
): Promise<WireEvent[]> {
  const filters = await targetFilters(ctx.store, user, request);
  const events = await findEvents(ctx.store, filters, request);

  return toWireEvents(ctx.store, events);
}
