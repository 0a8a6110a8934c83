import {
  createCipher,
  createMemoryLogStore,
  createMemoryStateStore,
  defaultPermissions,
  silentLogger,
} from '@dstack/core';
import type { CoreContext, DefaultPermissions, StateStore } from '@dstack/core';
import type { LightMyRequestResponse } from 'fastify';
import { createServer } from '../src/index.js';
import type { DstackServer, ServerOptions } from '../src/index.js';

/** A CoreContext on the in-memory store with identity encryption, for in-process tests. */
export function createTestContext(overrides: Partial<CoreContext> = {}): CoreContext {
  const store: StateStore = overrides.store ?? createMemoryStateStore();

  return {
    store,
    logs: overrides.logs ?? createMemoryLogStore(),
    cipher: createCipher(),
    providers: new Map(),
    logger: silentLogger,
    settings: {
      serverDir: '/nonexistent',
      serverVersion: '0.21.0',
      defaultPermissions: { ...defaultPermissions },
      userProjectQuota: 10,
    },
    now: () => Date.now(),
    ...overrides,
  };
}

/** A server on in-memory ports with no startup hooks. */
export async function createTestServer(
  options: Partial<ServerOptions> & { permissions?: Partial<DefaultPermissions> } = {},
): Promise<DstackServer> {
  const { permissions, ...rest } = options;

  return createServer({
    store: createMemoryStateStore(),
    logStore: createMemoryLogStore(),
    cipher: createCipher(),
    startupHooks: [],
    ...rest,
    settings: {
      serverDir: '/nonexistent',
      defaultPermissions: { ...defaultPermissions, ...permissions },
      ...rest.settings,
    },
  });
}

/** A POST with a bearer token (or none) and a JSON body (or none). */
export function post(
  server: DstackServer,
  url: string,
  token: string | null,
  body?: unknown,
): Promise<LightMyRequestResponse> {
  return server.inject({
    method: 'POST',
    url,
    headers: token === null ? {} : { authorization: `Bearer ${token}` },
    ...(body === undefined ? {} : { payload: body as object }),
  });
}

/** Creates a user through the API as admin and returns its token. */
export async function addUser(
  server: DstackServer,
  username: string,
  globalRole: 'admin' | 'user' = 'user',
): Promise<string> {
  const created = await post(server, '/api/users/create', server.adminToken, {
    username,
    global_role: globalRole,
  });

  if (created.statusCode !== 200) {
    throw new Error(`cannot create ${username}: ${created.body}`);
  }

  const user = await post(server, '/api/users/get_user', server.adminToken, { username });
  return (user.json() as { creds: { token: string } }).creds.token;
}
