import type { MemberRecord, ProjectRecord } from '../records.js';
import type { StateAccess } from '../ports/state-store.js';

/** The non-deleted project with this name, compared case-insensitively, or undefined. */
export async function findProjectByName(
  access: StateAccess,
  name: string,
): Promise<ProjectRecord | undefined> {
  const exact = await access.findOne('projects', { where: { name, deleted: false } });

  if (exact !== undefined) {
    return exact;
  }

  const lower = name.toLowerCase();
  const projects = await access.find('projects', { where: { deleted: false } });
  return projects.find((project) => project.name.toLowerCase() === lower);
}

/** The user's membership in the project, or undefined. */
export async function findMember(
  access: StateAccess,
  projectId: string,
  userId: string,
): Promise<MemberRecord | undefined> {
  return access.findOne('members', { where: { projectId, userId } });
}
