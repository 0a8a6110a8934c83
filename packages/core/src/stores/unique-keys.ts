import type { TableName, TableRows } from '../records.js';

/**
 * The unique keys of every table besides its primary key `id`. The in-memory store enforces
 * them and the SQL migrations create the same unique indexes.
 */
export const tableUniqueKeys: {
  [T in TableName]: readonly (readonly (keyof TableRows[T] & string)[])[];
} = {
  users: [['name'], ['tokenHash']],
  projects: [['name']],
  members: [['projectId', 'userId']],
  backends: [],
  secrets: [['projectId', 'name']],
  repos: [['projectId', 'name']],
  fleets: [],
  instances: [],
  runs: [],
  jobs: [],
  events: [],
  repo_creds: [['repoId', 'userId']],
  codes: [['repoId', 'blobHash']],
  user_public_keys: [['userId', 'fingerprint']],
  job_metrics_points: [],
};
