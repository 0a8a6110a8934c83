import type { FastifyInstance } from 'fastify';
import { registerProjectsRoutes } from './projects.js';
import type { RouteDeps } from './route-deps.js';
import { registerServerRoutes } from './server.js';
import { registerBackendsRoutes } from './backends.js';
import { registerSecretsRoutes } from './secrets.js';
import { registerUsersRoutes } from './users.js';
import { registerRunsRoutes } from './runs.js';
import { registerFleetsRoutes } from './fleets.js';
import { registerInstancesRoutes } from './instances.js';
import { registerLogsRoutes } from './logs.js';
import { registerProxyRoutes } from './proxy.js';
import { registerReposRoutes } from './repos.js';
import { registerGpusRoutes } from './gpus.js';
import { registerEventsRoutes } from './events.js';
import { registerGatewaysRoutes } from './gateways.js';
import { registerVolumesRoutes } from './volumes.js';
import { registerTemplatesRoutes } from './templates.js';
import { registerExportsRoutes } from './exports.js';
import { registerMetricsRoutes } from './metrics.js';
import { registerPublicKeysRoutes } from './public-keys.js';

// How to add a route module: create `src/routes/<area>.ts` exporting
// `register<Area>Routes(app: FastifyInstance, deps: RouteDeps): void`, and add one import and
// one call below. In each handler run the checks in the original's order: `requireUser` or
// `requireProject(request, guard)` first, then `parseBody(request, schema)`, then the
// service; throw DstackErrors from @dstack/core and return plain JSON (null for "nothing").

/** Registers every route module on the app. */
export function registerRoutes(app: FastifyInstance, deps: RouteDeps): void {
  registerServerRoutes(app, deps);
  registerSecretsRoutes(app, deps);
  registerBackendsRoutes(app, deps);
  registerUsersRoutes(app, deps);
  registerProjectsRoutes(app, deps);
  registerRunsRoutes(app, deps);
  registerFleetsRoutes(app, deps);
  registerInstancesRoutes(app, deps);
  registerLogsRoutes(app, deps);
  registerProxyRoutes(app, deps);
  registerReposRoutes(app, deps);
  registerGpusRoutes(app, deps);
  registerEventsRoutes(app, deps);
  registerGatewaysRoutes(app, deps);
  registerVolumesRoutes(app, deps);
  registerTemplatesRoutes(app, deps);
  registerExportsRoutes(app, deps);
  registerMetricsRoutes(app, deps);
  registerPublicKeysRoutes(app, deps);
}

export type { RouteDeps } from './route-deps.js';
