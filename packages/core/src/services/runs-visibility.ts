import type { CoreContext } from '../context.js';
import type { ProjectRecord, UserRecord } from '../records.js';
import { isGlobalAdmin } from './access.js';
import { findProjectByName } from './projects.js';

/**
 * The projects a user may list runs, fleets and instances of: every project for a global
 * admin, the ones they belong to otherwise; narrowed to `projectName` when given (an unknown
 * or inaccessible name gives none).
 */
export async function visibleProjects(
  ctx: CoreContext,
  user: UserRecord,
  projectName?: string | null,
): Promise<ProjectRecord[]> {
  let projects: ProjectRecord[];

  if (projectName !== null && projectName !== undefined) {
    const project = await findProjectByName(ctx.store, projectName);
    projects = project === undefined ? [] : [project];
  } else {
    projects = await ctx.store.find('projects', { where: { deleted: false } });
  }

  if (isGlobalAdmin(user)) {
    return projects;
  }

  const members = await ctx.store.find('members', { where: { userId: user.id } });
  const memberOf = new Set(members.map((member) => member.projectId));
  return projects.filter((project) => memberOf.has(project.id));
}
