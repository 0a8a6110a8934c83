import {
  createCipher,
  createMemoryLogStore,
  createMemoryStateStore,
  defaultPermissions,
} from '@dstack/core';
import type {
  BackendProvider,
  CoreContext,
  EncryptionKeyConfig,
  Logger,
  ProjectRecord,
  UserRecord,
} from '@dstack/core';

/** A logger that keeps every line as JSON, so tests can look for leaked values. */
export interface CapturingLogger extends Logger {
  lines: string[];
}

export function createCapturingLogger(lines: string[] = []): CapturingLogger {
  const at = (level: string) => (fields: object | string, message?: string): void => {
    lines.push(JSON.stringify({ level, fields, message }));
  };

  return {
    lines,
    error: at('error'),
    warn: at('warn'),
    info: at('info'),
    debug: at('debug'),
    child: () => createCapturingLogger(lines),
  };
}

export const testKeys: EncryptionKeyConfig[] = [
  { type: 'aes', name: 'key2', secret: Buffer.alloc(32, 2).toString('base64') },
  { type: 'aes', name: 'key1', secret: Buffer.alloc(32, 1).toString('base64') },
];

export interface TestContext extends CoreContext {
  logger: CapturingLogger;
}

export function createTestContext(
  options: { keys?: EncryptionKeyConfig[]; providers?: BackendProvider[] } = {},
): TestContext {
  let clock = Date.UTC(2026, 0, 1);

  return {
    store: createMemoryStateStore(),
    logs: createMemoryLogStore(),
    cipher: createCipher(options.keys ?? testKeys),
    providers: new Map((options.providers ?? []).map((provider) => [provider.type, provider])),
    logger: createCapturingLogger(),
    settings: {
      serverDir: '/nonexistent',
      serverVersion: null,
      defaultPermissions: { ...defaultPermissions },
      userProjectQuota: 10,
    },
    now: () => (clock += 1000),
  };
}

export async function addUser(
  ctx: CoreContext,
  name: string,
  globalRole: UserRecord['globalRole'] = 'user',
): Promise<UserRecord> {
  const token = `token-of-${name}`;
  const user: UserRecord = {
    id: crypto.randomUUID(),
    name,
    createdAt: ctx.now(),
    token: ctx.cipher.encrypt(token),
    tokenHash: name,
    globalRole,
    email: null,
    active: true,
    deleted: false,
    originalName: null,
    sshPublicKey: null,
    sshPrivateKey: null,
  };
  await ctx.store.insert('users', user);

  return user;
}

export async function addProject(ctx: CoreContext, name: string, owner: UserRecord) {
  const project: ProjectRecord = {
    id: crypto.randomUUID(),
    name,
    createdAt: ctx.now(),
    ownerId: owner.id,
    isPublic: false,
    templatesRepo: null,
    deleted: false,
    originalName: null,
    sshPublicKey: null,
    sshPrivateKey: null,
  };
  await ctx.store.insert('projects', project);

  return project;
}
