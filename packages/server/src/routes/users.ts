import type { FastifyInstance } from 'fastify';
import {
  createUser,
  deleteUsers,
  getMyUser,
  getUserWithCreds,
  listUsers,
  refreshUserSshKey,
  refreshUserToken,
  updateUser,
  userToWire,
} from '@dstack/core';
import type { GlobalRole } from '@dstack/core';
import { parseBody, requireGlobalAdmin, requireUser } from '../http/index.js';
import { keysetProperties, keysetQueryOf } from './list-query.js';
import type { KeysetBody } from './list-query.js';
import type { RouteDeps } from './route-deps.js';

const listSchema = {
  type: 'object',
  additionalProperties: false,
  properties: keysetProperties,
};

const usernameSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['username'],
  properties: { username: { type: 'string' } },
};

const optionalUsernameSchema = {
  type: 'object',
  additionalProperties: false,
  properties: { username: { type: ['string', 'null'], default: null } },
};

const userSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['username', 'global_role'],
  properties: {
    username: { type: 'string' },
    global_role: { enum: ['admin', 'user'] },
    email: { type: ['string', 'null'], default: null },
    active: { type: 'boolean', default: true },
  },
};

const deleteSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['users'],
  properties: { users: { type: 'array', items: { type: 'string' } } },
};

interface UserBody {
  username: string;
  global_role: GlobalRole;
  email: string | null;
  active: boolean;
}

/** `/api/users/*` (§3.2). */
export function registerUsersRoutes(app: FastifyInstance, deps: RouteDeps): void {
  const { ctx } = deps;

  app.post('/api/users/list', async (request) => {
    const actor = await requireUser(request);
    const body = parseBody<KeysetBody>(request, listSchema, { optional: true });
    return listUsers(ctx, actor, keysetQueryOf(body));
  });

  app.post('/api/users/get_my_user', async (request) => getMyUser(ctx, await requireUser(request)));

  app.post('/api/users/get_user', async (request) => {
    const actor = await requireUser(request);
    const body = parseBody<{ username: string }>(request, usernameSchema);
    return getUserWithCreds(ctx, actor, body.username);
  });

  app.post('/api/users/create', async (request) => {
    const actor = await requireGlobalAdmin(request);
    const body = parseBody<UserBody>(request, userSchema);
    const user = await createUser(ctx, {
      username: body.username,
      globalRole: body.global_role,
      email: body.email,
      active: body.active,
      actor,
    });
    return userToWire(ctx, user);
  });

  app.post('/api/users/update', async (request) => {
    await requireGlobalAdmin(request);
    const body = parseBody<UserBody>(request, userSchema);
    const user = await updateUser(ctx, {
      username: body.username,
      globalRole: body.global_role,
      email: body.email,
      active: body.active,
    });
    return userToWire(ctx, user);
  });

  app.post('/api/users/refresh_token', async (request) => {
    const actor = await requireUser(request);
    const body = parseBody<{ username: string }>(request, usernameSchema);
    return refreshUserToken(ctx, actor, body.username);
  });

  app.post('/api/users/refresh_ssh_key', async (request) => {
    const actor = await requireUser(request);
    const body = parseBody<{ username: string | null }>(request, optionalUsernameSchema, {
      optional: true,
    });
    return refreshUserSshKey(ctx, actor, body.username ?? actor.name);
  });

  app.post('/api/users/delete', async (request) => {
    const actor = await requireGlobalAdmin(request);
    const body = parseBody<{ users: string[] }>(request, deleteSchema);
    await deleteUsers(ctx, body.users, actor);
    return null;
  });
}
