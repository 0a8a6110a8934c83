import type { Logger } from '../ports/logger.js';

/** A running periodic task. */
export interface PeriodicTaskHandle {
  /** Stops the timer and waits for a pass under way. */
  stop(): Promise<void>;
}

/**
 * Runs `run` every `everyMillis`, never two passes at once; a failed pass is logged and the
 * next one runs on time. The timer does not keep the process alive.
 */
export function startPeriodicTask(
  logger: Logger,
  name: string,
  everyMillis: number,
  run: () => Promise<void>,
): PeriodicTaskHandle {
  const log = logger.child({ task: name });
  let current: Promise<void> | null = null;

  const pass = (): void => {
    if (current !== null) {
      return;
    }

    current = run()
      .catch((error: unknown) => {
        log.error({ err: error instanceof Error ? error.message : String(error) }, 'task failed');
      })
      .finally(() => {
        current = null;
      });
  };

  const timer = setInterval(pass, everyMillis);
  timer.unref();

  return {
    async stop() {
      clearInterval(timer);
      await current;
    },
  };
}
