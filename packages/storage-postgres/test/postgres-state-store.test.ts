import { tableColumns } from '@dstack/core';
import { runStateStoreContract } from '@dstack/core/testing';
import { createPostgresStateStore, migrateToLatest } from '@dstack/storage-postgres';
import { toSnakeCase } from '@dstack/storage-sql';
import { afterAll, beforeAll } from 'vitest';
import { createTestSchema } from './test-schema.js';
import type { TestSchema } from './test-schema.js';

let schema: TestSchema;

beforeAll(async () => {
  schema = await createTestSchema('contract');
  const pool = schema.pool();
  await migrateToLatest(pool);
  await pool.end();
});

afterAll(async () => {
  await schema?.drop();
});

runStateStoreContract('postgres', async () => {
  const tables = Object.keys(tableColumns).map((table) => `"${toSnakeCase(table)}"`);
  await schema.admin.query(`truncate ${tables.join(', ')}`);
  return createPostgresStateStore({ pool: schema.pool(6), lockRetryMillis: 10 });
});
