import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import {
  DuplicateKeyError,
  eventTarget,
  newId,
  recordEvent,
  ResourceExistsError,
  ServerClientError,
  toWireTime,
} from '@dstack/core';
import type { UserPublicKeyRecord } from '@dstack/core';
import { parseBody, requireUser } from '../http/index.js';
import type { JsonSchema } from '../http/index.js';
import type { RouteDeps } from './route-deps.js';

const addSchema: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['key'],
  properties: {
    key: { type: 'string' },
    name: { type: ['string', 'null'], default: null },
  },
};

const deleteSchema: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['ids'],
  properties: { ids: { type: 'array', items: { type: 'string', format: 'uuid' } } },
};

/** What the wire fields of one key blob hold after its type name, by key type. */
const keyLayouts: Record<string, ('string' | 'ed25519')[]> = {
  'ssh-rsa': ['string', 'string'],
  'ecdsa-sha2-nistp256': ['string', 'string'],
  'ecdsa-sha2-nistp384': ['string', 'string'],
  'ecdsa-sha2-nistp521': ['string', 'string'],
  'ssh-ed25519': ['ed25519'],
  'sk-ecdsa-sha2-nistp256@openssh.com': ['string', 'string', 'string'],
  'sk-ssh-ed25519@openssh.com': ['ed25519', 'string'],
};

const invalidKey = 'Invalid public key, must be in OpenSSH public key format';

/** The length-prefixed fields of an SSH wire blob, or null when it does not split cleanly. */
function wireFields(blob: Buffer): Buffer[] | null {
  const fields: Buffer[] = [];
  let offset = 0;

  while (offset < blob.length) {
    if (offset + 4 > blob.length) {
      return null;
    }

    const length = blob.readUInt32BE(offset);
    const end = offset + 4 + length;

    if (end > blob.length) {
      return null;
    }

    fields.push(blob.subarray(offset + 4, end));
    offset = end;
  }

  return fields;
}

interface ParsedKey {
  type: string;
  blob: Buffer;
  comment: string | null;
}

/**
 * Checks an OpenSSH public key (`<type> <base64 blob>[ comment]`): a supported type, the
 * same type inside the blob, and the fields that type has. 400 with the original's text.
 */
export function parseOpenSshPublicKey(key: string): ParsedKey {
  const [type, encoded, ...comment] = key.trim().split(/\s+/);

  if (type === undefined || encoded === undefined || !/^[A-Za-z0-9+/]+={0,2}$/.test(encoded)) {
    throw new ServerClientError(invalidKey);
  }

  const blob = Buffer.from(encoded, 'base64');
  const fields = wireFields(blob);

  if (fields === null || fields.length === 0 || fields[0]!.toString('latin1') !== type) {
    throw new ServerClientError(invalidKey);
  }

  const layout = keyLayouts[type];

  if (layout === undefined) {
    throw new ServerClientError(`Unsupported key type: ${type}`);
  }

  const rest = fields.slice(1);
  const fits = rest.length === layout.length && layout.every((kind, index) =>
    kind === 'ed25519' ? rest[index]!.length === 32 : rest[index]!.length > 0);

  if (!fits) {
    throw new ServerClientError(invalidKey);
  }

  return { type, blob, comment: comment.length > 0 ? comment.join(' ') : null };
}

/** The fingerprint OpenSSH prints: `SHA256:` and the unpadded base64 of the blob's digest. */
export function openSshFingerprint(blob: Buffer): string {
  const digest = createHash('sha256').update(blob).digest('base64');

  return `SHA256:${digest.replace(/=+$/, '')}`;
}

function toWire(record: UserPublicKeyRecord) {
  return {
    id: record.id,
    added_at: toWireTime(record.createdAt),
    name: record.name,
    type: record.type,
    fingerprint: record.fingerprint,
  };
}

/** `/api/users/public_keys/*`: any authenticated user manages their own uploaded SSH keys. */
export function registerPublicKeysRoutes(app: FastifyInstance, deps: RouteDeps): void {
  const { ctx } = deps;
  const prefix = '/api/users/public_keys';

  app.post(`${prefix}/list`, async (request) => {
    const user = await requireUser(request);
    const keys = await ctx.store.find('user_public_keys', {
      where: { userId: user.id },
      orderBy: [['createdAt', 'desc'], ['id', 'asc']],
    });

    return keys.map(toWire);
  });

  app.post(`${prefix}/add`, async (request) => {
    const user = await requireUser(request);
    const body = parseBody<{ key: string; name: string | null }>(request, addSchema);
    const parsed = parseOpenSshPublicKey(body.key);
    const fallback = parsed.comment ?? createHash('md5').update(parsed.blob).digest('hex');
    const record: UserPublicKeyRecord = {
      id: newId(),
      userId: user.id,
      name: body.name === null || body.name === '' ? fallback : body.name,
      type: parsed.type,
      fingerprint: openSshFingerprint(parsed.blob),
      key: body.key,
      createdAt: ctx.now(),
    };

    try {
      await ctx.store.transaction(async (tx) => {
        await tx.insert('user_public_keys', record);
        await recordEvent(ctx, tx, `Public key added. Fingerprint: ${record.fingerprint}`, user,
          [eventTarget.user(user)]);
      });
    } catch (error) {
      if (error instanceof DuplicateKeyError) {
        throw new ResourceExistsError();
      }

      throw error;
    }

    return toWire(record);
  });

  app.post(`${prefix}/delete`, async (request) => {
    const user = await requireUser(request);
    const body = parseBody<{ ids: string[] }>(request, deleteSchema);
    const ids = body.ids.map((id) => id.toLowerCase());

    await ctx.store.transaction(async (tx) => {
      const keys = await tx.find('user_public_keys', {
        where: { userId: user.id, id: { in: ids } },
      });
      await tx.delete('user_public_keys', { id: { in: keys.map((key) => key.id) } });

      for (const key of keys) {
        await recordEvent(ctx, tx, `Public key deleted. Fingerprint: ${key.fingerprint}`, user,
          [eventTarget.user(user)]);
      }
    });

    return null;
  });
}
