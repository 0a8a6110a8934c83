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
  /** How often to look for a newly added local backend of project `main`. */
  defaultFleetCheckMillis?: number;
}

/**
 * What a server does at start: gives project `main` its default local fleet (when it has a
 * local backend and never had a fleet), then starts the scheduler. Returns the stop function.
 */
export async function startBackgroundProcessing(
  ctx: CoreContext,
  options: BackgroundProcessingOptions = {},
): Promise<() => Promise<void>> {
  const outcome = await ensureDefaultFleet(ctx, defaultProjectName);
  let timer: NodeJS.Timeout | null = null;

  // The local backend may be added after start (the API, a later config.yml sync): look
  // again until the project has a fleet of its own or the default one.
  if (outcome === 'no-local-backend') {
    timer = setInterval(() => {
      ensureDefaultFleet(ctx, defaultProjectName).then(
        (next) => {
          if (next !== 'no-local-backend' && timer !== null) {
            clearInterval(timer);
            timer = null;
          }
        },
        (error: unknown) => ctx.logger.warn({ err: String(error) }, 'default fleet check failed'),
      );
    }, options.defaultFleetCheckMillis ?? 2000);
    timer.unref();
  }

  const stopTimer = (): void => {
    if (timer !== null) {
      clearInterval(timer);
      timer = null;
    }
  };

  if (options.disabled === true) {
    ctx.logger.info({}, 'background processing is disabled');
    return async () => stopTimer();
  }

  const scheduler = startScheduler(ctx, options.scheduler);
  return async () => {
    stopTimer();
    await scheduler.stop();
  };
}
