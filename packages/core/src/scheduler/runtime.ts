import type { CoreContext } from '../context.js';
import type { AgentCache } from './agents.js';
import type { SchedulerOptions } from './scheduler-options.js';

/** What every pipeline of one scheduler shares. */
export interface SchedulerRuntime {
  ctx: CoreContext;
  options: SchedulerOptions;
  agents: AgentCache;
  /** Project names by id; a name never changes while the project exists. */
  projectNames: Map<string, string>;
}

/** The name of a project, read once per scheduler. */
export async function projectNameOf(rt: SchedulerRuntime, projectId: string): Promise<string> {
  let name = rt.projectNames.get(projectId);

  if (name === undefined) {
    name = (await rt.ctx.store.get('projects', projectId))?.name ?? '';
    rt.projectNames.set(projectId, name);
  }

  return name;
}

/** A short text of an error for messages and logs. */
export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
