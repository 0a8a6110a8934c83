import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** The team's local Postgres; override with DSTACK_TEST_POSTGRES_URL. */
export const postgresUrl =
  process.env.DSTACK_TEST_POSTGRES_URL ?? 'postgresql://postgres@127.0.0.1:5432/test';

/** A schema of this test file's own, with pools whose search_path points at it. */
export interface TestSchema {
  name: string;
  admin: pg.Pool;
  /** A new pool on the schema; the caller (or the store) ends it. */
  pool(max?: number): pg.Pool;
  drop(): Promise<void>;
}

export async function createTestSchema(prefix: string): Promise<TestSchema> {
  const name = `${prefix}_${randomBytes(4).toString('hex')}`;
  const options = `-c search_path=${name}`;
  const admin = new pg.Pool({ connectionString: postgresUrl, max: 2, options });
  await admin.query(`create schema "${name}"`);

  return {
    name,
    admin,
    pool: (max = 4) => new pg.Pool({ connectionString: postgresUrl, max, options }),
    async drop() {
      await admin.query(`drop schema if exists "${name}" cascade`);
      await admin.end();
    },
  };
}
