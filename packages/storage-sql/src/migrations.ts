import type { ColumnKind, Logger } from '@dstack/core';
import { silentLogger } from '@dstack/core';
import { Migrator } from 'kysely';
import type { Migration, MigrationProvider } from 'kysely';
import type { AnyKysely, SqlDialect } from './sql-dialect.js';

/** One step of the state schema; `up` runs inside its own transaction. */
export interface StateMigration {
  up(db: AnyKysely, dialect: SqlDialect): Promise<void>;
}

/**
 * A table as a migration writes it: `name kind` pairs, `!` for NOT NULL. The primary key is
 * always `id`. Kept as text so that the migration never changes when the records do.
 */
async function createTable(
  db: AnyKysely,
  dialect: SqlDialect,
  table: string,
  columns: string,
): Promise<void> {
  let builder = db.schema.createTable(table);

  for (const spec of columns.split(',').map((part) => part.trim())) {
    const [name, rawKind] = spec.split(/\s+/);
    const notNull = rawKind.endsWith('!');
    const kind = rawKind.replace('!', '') as ColumnKind;
    builder = builder.addColumn(name, dialect.columnType(kind), (column) => {
      const primary = name === 'id' ? column.primaryKey() : column;
      return notNull || name === 'id' ? primary.notNull() : primary;
    });
  }

  await builder.execute();
}

async function createIndex(
  db: AnyKysely,
  table: string,
  columns: string[],
  unique = false,
): Promise<void> {
  const name = `${unique ? 'uq' : 'ix'}_${table}_${columns.join('_')}`;
  const builder = db.schema.createIndex(name).on(table).columns(columns);
  await (unique ? builder.unique() : builder).execute();
}

const lease = 'lock_token text, lock_owner text, lock_expires_at time';

// TODO: no foreign keys (the in-memory store has none); add them when deletes need cascades.
const initialSchema: StateMigration = {
  async up(db, dialect) {
    await createTable(db, dialect, 'users', `
      id text!, name text!, created_at time!, token text!, token_hash text!, global_role text!,
      email text, active boolean!, deleted boolean!, original_name text, ssh_public_key text,
      ssh_private_key text`);
    await createIndex(db, 'users', ['name'], true);
    await createIndex(db, 'users', ['token_hash'], true);

    await createTable(db, dialect, 'projects', `
      id text!, name text!, created_at time!, owner_id text!, is_public boolean!,
      templates_repo text, deleted boolean!, original_name text, ssh_public_key text,
      ssh_private_key text`);
    await createIndex(db, 'projects', ['name'], true);

    await createTable(db, dialect, 'members', `
      id text!, project_id text!, user_id text!, project_role text!, member_num integer!`);
    await createIndex(db, 'members', ['project_id', 'user_id'], true);
    await createIndex(db, 'members', ['user_id']);

    await createTable(db, dialect, 'backends', `
      id text!, project_id text!, type text!, config json, auth text, source_config json,
      source_auth text`);
    await createIndex(db, 'backends', ['project_id']);

    await createTable(db, dialect, 'secrets', `
      id text!, project_id text!, name text!, value text!, created_at time!, updated_at time!`);
    await createIndex(db, 'secrets', ['project_id', 'name'], true);

    await createTable(db, dialect, 'repos', `
      id text!, project_id text!, name text!, type text!, info json, creds text`);
    await createIndex(db, 'repos', ['project_id', 'name'], true);

    await createTable(db, dialect, 'fleets', `
      id text!, project_id text!, name text!, created_at time!, last_processed_at time!,
      deleted boolean!, deleted_at time, status text!, status_message text, spec json,
      consolidation_attempt integer!, ${lease}`);
    await createIndex(db, 'fleets', ['project_id', 'name']);
    await createIndex(db, 'fleets', ['deleted', 'last_processed_at']);

    await createTable(db, dialect, 'instances', `
      id text!, project_id text!, fleet_id text, name text!, instance_num integer!,
      created_at time!, last_processed_at time!, deleted boolean!, deleted_at time,
      status text!, unreachable boolean!, started_at time, finished_at time, backend text,
      region text, availability_zone text, price real, instance_type json, offer json,
      provisioning_data json, remote_connection_info text, profile json, total_blocks integer,
      busy_blocks integer!, termination_policy text, termination_idle_time integer!,
      termination_deadline time, termination_reason text, termination_reason_message text,
      last_job_processed_at time, provisioning_job_id text, health text!,
      first_termination_retry_at time, ${lease}`);
    await createIndex(db, 'instances', ['status', 'last_processed_at']);
    await createIndex(db, 'instances', ['project_id']);
    await createIndex(db, 'instances', ['fleet_id']);

    await createTable(db, dialect, 'runs', `
      id text!, project_id text!, user_id text!, repo_id text, fleet_id text, run_name text!,
      submitted_at time!, last_processed_at time!, status text!, status_message text,
      termination_reason text, resubmission_attempt integer!, run_spec json, service_spec json,
      priority integer!, deployment_num integer!, deleted boolean!, next_triggered_at time,
      ${lease}`);
    await createIndex(db, 'runs', ['status', 'last_processed_at']);
    await createIndex(db, 'runs', ['project_id', 'run_name']);
    await createIndex(db, 'runs', ['project_id', 'submitted_at']);

    await createTable(db, dialect, 'jobs', `
      id text!, project_id text!, run_id text!, fleet_id text, run_name text!,
      job_num integer!, job_name text!, replica_num integer!, submission_num integer!,
      deployment_num integer!, submitted_at time!, last_processed_at time!, finished_at time,
      status text!, status_message text, termination_reason text,
      termination_reason_message text, exit_status integer, job_spec json,
      provisioning_data json, runtime_data json, runner_timestamp integer,
      disconnected_at time, instance_id text, used_instance_id text,
      instance_assigned boolean!, graceful_termination_attempts integer, remove_at time,
      waiting_master_job boolean!, ${lease}`);
    await createIndex(db, 'jobs', ['status', 'last_processed_at']);
    await createIndex(db, 'jobs', ['run_id']);
    await createIndex(db, 'jobs', ['instance_id']);

    await createTable(db, dialect, 'events', `
      id text!, message text!, recorded_at time!, actor_user_id text, targets json`);
    await createIndex(db, 'events', ['recorded_at']);
  },
};

// Per-user repo credentials and uploaded code blobs, as the original keeps them.
const repoCredsAndCodes: StateMigration = {
  async up(db, dialect) {
    await createTable(db, dialect, 'repo_creds', `
      id text!, repo_id text!, user_id text!, creds text!`);
    await createIndex(db, 'repo_creds', ['repo_id', 'user_id'], true);

    await createTable(db, dialect, 'codes', `id text!, repo_id text!, blob_hash text!, blob text!`);
    await createIndex(db, 'codes', ['repo_id', 'blob_hash'], true);
  },
};

// SSH public keys users upload (users/public_keys/*).
const userPublicKeys: StateMigration = {
  async up(db, dialect) {
    await createTable(db, dialect, 'user_public_keys', `
      id text!, user_id text!, name text!, type text!, fingerprint text!, key text!,
      created_at time!`);
    await createIndex(db, 'user_public_keys', ['user_id', 'fingerprint'], true);
  },
};

// Named, not derived from the columns: Postgres cuts names at 63 characters.
async function createNamedIndex(
  db: AnyKysely,
  name: string,
  table: string,
  columns: string[],
): Promise<void> {
  await db.schema.createIndex(name).on(table).columns(columns).execute();
}

// Hot queries at 10,000 active runs. Claims: a pipeline's due rows are either never looked at
// (no owner) or processed long enough ago; the indexes hold every column the claim reads, so
// it walks index entries only instead of visiting each busy row. Submission: the free
// instances of a fleet and its next instance number. runs/list: keyset pages on
// (submitted_at, id) without a sort.
const hotQueryIndexes: StateMigration = {
  async up(db) {
    for (const table of ['runs', 'jobs', 'instances']) {
      const deleted = table === 'instances' ? ['deleted'] : [];
      await createNamedIndex(db, `ix_${table}_claim_unowned`, table, [
        'status', 'lock_owner', 'last_processed_at', 'lock_expires_at', ...deleted,
      ]);
      await createNamedIndex(db, `ix_${table}_claim_due`, table, [
        'status', 'last_processed_at', 'lock_owner', 'lock_expires_at', ...deleted,
      ]);
    }

    await createIndex(db, 'instances', ['fleet_id', 'deleted', 'status', 'total_blocks']);
    await createIndex(db, 'instances', ['fleet_id', 'instance_num']);
    // Descending id: a newest-first page orders by (submitted_at desc, id asc), so the
    // index read backwards gives that order, and read forwards the oldest-first one.
    await createNamedIndex(db, 'ix_runs_project_id_submitted_at_id', 'runs', [
      'project_id', 'submitted_at', 'id desc',
    ]);
  },
};

// Job metrics samples (metrics/job). Reads take one job's newest points; the TTL deletes
// take a job's points older than a cutoff, or every point older than one.
const jobMetricsPoints: StateMigration = {
  async up(db, dialect) {
    await createTable(db, dialect, 'job_metrics_points', `
      id text!, job_id text!, timestamp_micro integer!, cpu_usage_micro integer!,
      memory_usage_bytes integer!, memory_working_set_bytes integer!,
      gpus_memory_usage_bytes json!, gpus_util_percent json!`);
    await createIndex(db, 'job_metrics_points', ['job_id', 'timestamp_micro']);
    await createIndex(db, 'job_metrics_points', ['timestamp_micro']);
  },
};

/**
 * Every migration of the state schema, oldest first. Names sort in order; a new step gets
 * the next number and never changes an old one.
 */
export const stateMigrations: Readonly<Record<string, StateMigration>> = {
  '0001_initial_schema': initialSchema,
  '0002_repo_creds_and_codes': repoCredsAndCodes,
  '0003_user_public_keys': userPublicKeys,
  '0004_hot_query_indexes': hotQueryIndexes,
  '0005_job_metrics_points': jobMetricsPoints,
};

/** Options of `migrateToLatest`. */
export interface MigrateOptions {
  /** The migrations to apply; the state schema by default. */
  migrations?: Readonly<Record<string, StateMigration>>;
  logger?: Logger;
}

function createProvider(
  dialect: SqlDialect,
  migrations: Readonly<Record<string, StateMigration>>,
): MigrationProvider {
  const steps: Record<string, Migration> = {};

  for (const [name, migration] of Object.entries(migrations)) {
    steps[name] = {
      up: async (db) => {
        const run = async (target: AnyKysely): Promise<void> => {
          await dialect.beforeMigration(target);
          await migration.up(target, dialect);
        };

        // Each step is atomic: a failed one leaves the schema as the previous step left it.
        await (dialect.migratorUsesTransactions ? run(db) : db.transaction().execute(run));
      },
    };
  }

  return { getMigrations: async () => steps };
}

/**
 * Brings the state schema up to the latest migration, one transaction per step, while
 * holding the dialect's migration lock so concurrent replicas take turns. Returns the names
 * of the steps it applied.
 */
export async function migrateToLatest(
  db: AnyKysely,
  dialect: SqlDialect,
  options: MigrateOptions = {},
): Promise<string[]> {
  const log = options.logger ?? silentLogger;
  const migrations = options.migrations ?? stateMigrations;

  return dialect.withMigrationLock(db, async () => {
    const migrator = new Migrator({
      db,
      provider: createProvider(dialect, migrations),
      migrationTableSchema: await dialect.migrationSchema(db),
    });
    const pending = (await migrator.getMigrations()).filter((item) => !item.executedAt);
    const applied: string[] = [];

    for (const { name } of pending) {
      const { error, results } = await migrator.migrateTo(name);
      const failed = results?.find((result) => result.status === 'Error');

      if (error || failed) {
        log.error({ migration: name, dialect: dialect.name }, 'state migration failed');
        throw error instanceof Error
          ? error
          : new Error(`state migration ${name} failed: ${String(error)}`);
      }

      for (const result of results ?? []) {
        applied.push(result.migrationName);
        const fields = { migration: result.migrationName, dialect: dialect.name };
        log.info(fields, 'state migration applied');
      }
    }

    return applied;
  });
}
