import { randomUUID } from 'node:crypto';
import type { UserRecord } from '@dstack/core';
import { createPostgresStateStore, migrateToLatest } from '@dstack/storage-postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestSchema } from './test-schema.js';
import type { TestSchema } from './test-schema.js';

let schema: TestSchema;

beforeAll(async () => {
  schema = await createTestSchema('limits');
  const pool = schema.pool();
  await migrateToLatest(pool);
  await pool.end();
});

afterAll(async () => {
  await schema?.drop();
});

function user(name: string, createdAt: number): UserRecord {
  const id = randomUUID();
  return {
    id, name, createdAt, token: `enc:identity:noname:${id}`, tokenHash: `hash-${id}`,
    globalRole: 'user', email: null, active: true, deleted: false, originalName: null,
    sshPublicKey: null, sshPrivateKey: null,
  };
}

// instances/list takes any integer limit (the original bounds none); 10^20 reached
// Postgres as a LIMIT outside bigint and the request ended in a 500.
describe('find limits beyond what the database takes', () => {
  it('returns every row for a limit past bigint, and none for a negative one', async () => {
    const store = createPostgresStateStore({ pool: schema.pool(2) });

    try {
      await store.insert('users', [user('first', 1), user('second', 2)]);
      const all = await store.find('users', { orderBy: [['createdAt', 'asc']], limit: 1e20 });
      expect(all.map((row) => row.name)).toEqual(['first', 'second']);

      const paged = await store.find('users', {
        orderBy: [['createdAt', 'asc']], limit: Number.MAX_VALUE, offset: 1,
      });
      expect(paged.map((row) => row.name)).toEqual(['second']);
      expect(await store.find('users', { limit: -5 })).toEqual([]);
    } finally {
      await store.close();
    }
  });
});
