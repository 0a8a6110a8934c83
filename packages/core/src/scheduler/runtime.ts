import type { CoreContext } from '../context.js';
import type { AgentCache } from './agents.js';
import type { SchedulerOptions } from './scheduler-options.js';

/** What every pipeline of one scheduler shares. */
export interface SchedulerRuntime {
  ctx: CoreContext;
  options: SchedulerOptions;
  agents: AgentCache;
}

/** A short text of an error for messages and logs. */
export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
