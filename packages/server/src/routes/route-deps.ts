import type { CoreContext } from '@dstack/core';

/**
 * What route modules get besides the Fastify app. Add a field here (additively) when a
 * module needs something the server builds once at start.
 */
export interface RouteDeps {
  ctx: CoreContext;
}
