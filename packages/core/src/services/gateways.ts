import { ResourceNotExistsError, ServerClientError } from '../errors/server-errors.js';

/** The 400 every gateway mutation answers: gateways cannot be created here yet. */
export function gatewaysNotSupported(): ServerClientError {
  return new ServerClientError(
    'This server does not support gateways yet; services are reachable through the'
      + ' server\'s own proxy (/proxy/services/<project>/<run>/)',
  );
}

// TODO: gateways (provisioning, domains, service registration) are not implemented; until
// they are, no project has any and the lists below are truthfully empty.

/** The project's gateways; none exist on this server. */
export async function listGateways(): Promise<never[]> {
  return [];
}

/** Any gateway asked for by name: 400 `resource_not_exists`, since there are none. */
export async function getGateway(): Promise<never> {
  throw new ResourceNotExistsError();
}
