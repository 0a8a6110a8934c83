import type { JobProvisioningData, Logger } from '@dstack/core';

/** The keys the agent logs in with on a host provisioned earlier. */
export interface SshHostKeys {
  /** The project private key, installed on the host by `provisionHost`. */
  privateKey: string;
  /** The key for the fleet's `proxy_jump`, when the host is behind one. */
  proxyPrivateKey: string | null;
}

export interface SshBackendProviderOptions {
  logger?: Logger;
  /**
   * Finds the keys of a host this process has not provisioned itself (after a restart, or on
   * another replica); the server looks them up from the instance's fleet and project.
   */
  resolveKeys?: (provisioningData: JobProvisioningData) => Promise<SshHostKeys | null>;
  /** Bound on TCP connect, handshake and authentication, per hop. Default 10 s. */
  connectTimeoutMillis?: number;
  /** Bound on one agent call on the host. Default 30 s. */
  commandTimeoutMillis?: number;
  /** A pooled connection unused this long is closed. Default 2 min. */
  idleConnectionMillis?: number;
  /** Between SIGTERM and SIGKILL when `max_duration` ends a job. Default 10 s. */
  stopGraceSeconds?: number;
  /** How many bytes of log events one pull reads at most. Default 1 MiB. */
  pullMaxBytes?: number;
}

export interface ResolvedSshOptions {
  logger: Logger;
  resolveKeys: ((provisioningData: JobProvisioningData) => Promise<SshHostKeys | null>) | null;
  connectTimeoutMillis: number;
  commandTimeoutMillis: number;
  idleConnectionMillis: number;
  stopGraceSeconds: number;
  pullMaxBytes: number;
}
