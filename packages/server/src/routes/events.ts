import type { FastifyInstance } from 'fastify';
import { listEvents, parseWireTime, RequestValidationError } from '@dstack/core';
import type { ListEventsRequest } from '@dstack/core';
import { parseBody, requireUser } from '../http/index.js';
import type { JsonSchema } from '../http/index.js';
import type { RouteDeps } from './route-deps.js';

const ids = (item: object): object => ({
  type: ['array', 'null'],
  items: item,
  minItems: 1,
  maxItems: 16,
  default: null,
});
const uuid = { type: 'string', format: 'uuid' };
const targetFields = [
  'target_projects', 'target_users', 'target_fleets', 'target_instances', 'target_runs',
  'target_jobs', 'target_volumes', 'target_gateways', 'target_secrets',
] as const;
const withinFields = ['within_projects', 'within_fleets', 'within_runs'] as const;
// Every type the original's clients may ask for, also those this server records no event for.
const targetTypes = [
  'project', 'user', 'fleet', 'instance', 'run', 'job', 'volume', 'gateway', 'secret',
];

const listSchema: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    ...Object.fromEntries([...targetFields, ...withinFields].map((name) => [name, ids(uuid)])),
    include_target_types: ids({ enum: targetTypes }),
    actors: ids({ anyOf: [uuid, { type: 'null' }] }),
    prev_recorded_at: { type: ['string', 'null'], format: 'date-time', default: null },
    prev_id: { type: ['string', 'null'], format: 'uuid', default: null },
    limit: { type: 'integer', minimum: 1, maximum: 100, default: 100 },
    ascending: { type: 'boolean', default: false },
  },
};

type Field = (typeof targetFields)[number] | (typeof withinFields)[number];

type ListBody = Record<Field, string[] | null> & {
  include_target_types: string[] | null;
  actors: (string | null)[] | null;
  prev_recorded_at: string | null;
  prev_id: string | null;
  limit: number;
  ascending: boolean;
};

/** Pydantic's answer to a model validator that failed: one value_error on the body. */
function checkAtMostOne(body: ListBody, fields: readonly Field[], kind: string): void {
  const set = fields.filter((field) => body[field] !== null);

  if (set.length > 1) {
    const error = `At most one ${kind}_* filter can be set at a time. Got ${set.join(', ')}`;
    throw new RequestValidationError([
      { type: 'value_error', loc: ['body'], msg: `Value error, ${error}`, input: body,
        ctx: { error } },
    ]);
  }
}

const lower = (values: string[] | null): string[] | null =>
  values === null ? null : values.map((value) => value.toLowerCase());

function requestOf(body: ListBody): ListEventsRequest {
  return {
    targetProjects: lower(body.target_projects),
    targetUsers: lower(body.target_users),
    targetFleets: lower(body.target_fleets),
    targetInstances: lower(body.target_instances),
    targetRuns: lower(body.target_runs),
    targetJobs: lower(body.target_jobs),
    targetVolumes: lower(body.target_volumes),
    targetGateways: lower(body.target_gateways),
    targetSecrets: lower(body.target_secrets),
    withinProjects: lower(body.within_projects),
    withinFleets: lower(body.within_fleets),
    withinRuns: lower(body.within_runs),
    includeTargetTypes: body.include_target_types,
    actors: body.actors === null
      ? null
      : body.actors.map((actor) => (actor === null ? null : actor.toLowerCase())),
    prevRecordedAt: body.prev_recorded_at === null ? null : parseWireTime(body.prev_recorded_at),
    prevId: body.prev_id === null ? null : body.prev_id.toLowerCase(),
    limit: body.limit,
    ascending: body.ascending,
  };
}

/** `POST /api/events/list` (any authenticated user; they see events of their projects). */
export function registerEventsRoutes(app: FastifyInstance, deps: RouteDeps): void {
  const { ctx } = deps;

  app.post('/api/events/list', async (request) => {
    const user = await requireUser(request);
    const body = parseBody<ListBody>(request, listSchema);
    checkAtMostOne(body, targetFields, 'target');
    checkAtMostOne(body, withinFields, 'within');

    return listEvents(ctx, user, requestOf(body));
  });
}
