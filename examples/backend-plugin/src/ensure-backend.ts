import type { DstackClient } from '@dstack/client';

interface ProjectWithBackends {
  backends: { name: string }[];
}

/**
 * Makes sure the client's project has a backend of this type, creating it through the API
 * (as a global admin) when it is missing; returns whether it created one.
 */
// TODO: drop once createServer applies config.yml backends at start; until then it does it.
export async function ensureBackend(client: DstackClient, type: string): Promise<boolean> {
  const project = await client.request<ProjectWithBackends>(
    `/api/projects/${encodeURIComponent(client.projectName)}/get`,
  );

  if (project.backends.some((backend) => backend.name === type)) {
    return false;
  }

  await client.request(`/api/project/${encodeURIComponent(client.projectName)}/backends/create`,
    { type });
  return true;
}
