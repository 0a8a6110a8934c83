import type { CoreContext } from '../context.js';
import { defaultProjectName } from '../services/projects.js';
import { ensureDefaultFleet } from '../services/fleets.js';
import type { StartSchedulerOptions } from './start-scheduler.js';
import { startScheduler } from './start-scheduler.js';

/** Options of the server's background work. */
export interface BackgroundProcessingOptions {
  /** `DSTACK_SERVER_BACKGROUND_PROCESSING_DISABLED`: serve the API only. */
  disabled?: boolean;
  scheduler?: StartSchedulerOptions;
}

/**
 * What a server does once at start: gives project `main` its default local fleet (when it
 * has a local backend and no fleet), then starts the scheduler. Returns the stop function.
 */
export async function startBackgroundProcessing(
  ctx: CoreContext,
  options: BackgroundProcessingOptions = {},
): Promise<() => Promise<void>> {
  await ensureDefaultFleet(ctx, defaultProjectName);

  if (options.disabled === true) {
    ctx.logger.info({}, 'background processing is disabled');
    return async () => undefined;
  }

  const scheduler = startScheduler(ctx, options.scheduler);
  return () => scheduler.stop();
}
