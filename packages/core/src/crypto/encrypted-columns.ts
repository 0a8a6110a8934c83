import type { TableName, TableRows } from '../records.js';

/**
 * Every column the Cipher protects, by table. Besides the original's (tokens, backend and
 * repo credentials, secrets) this includes the SSH private keys of users and projects and the
 * connection info of SSH fleet hosts, which holds their private keys.
 */
export const encryptedColumns = {
  users: ['token', 'sshPrivateKey'],
  projects: ['sshPrivateKey'],
  backends: ['auth', 'sourceAuth'],
  secrets: ['value'],
  repos: ['creds'],
  repo_creds: ['creds'],
  instances: ['remoteConnectionInfo'],
} as const satisfies { [T in TableName]?: readonly (keyof TableRows[T] & string)[] };

/** A table that has encrypted columns. */
export type EncryptedTableName = keyof typeof encryptedColumns;
