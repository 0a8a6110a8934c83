import { ResourceNotExistsError, ServerClientError } from '../errors/server-errors.js';

/** The 400 volume creation and deletion answer: volumes cannot be created here yet. */
export function volumesNotSupported(): ServerClientError {
  return new ServerClientError('This server does not support volumes yet');
}

// TODO: volumes (backend disks, attachments, instance mounts) are not implemented; until
// they are, no project has any and the lists below are truthfully empty.

/** Volumes of the given projects; none exist on this server. */
export async function listVolumes(): Promise<never[]> {
  return [];
}

/** Any volume asked for by name: 400 `resource_not_exists`, since there are none. */
export async function getVolume(): Promise<never> {
  throw new ResourceNotExistsError();
}
