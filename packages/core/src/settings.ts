/** `default_permissions` of config.yml. */
export interface DefaultPermissions {
  allowNonAdminsCreateProjects: boolean;
  allowNonAdminsManageSshFleets: boolean;
  allowManagersManageSecrets: boolean;
}

export const defaultPermissions: DefaultPermissions = {
  allowNonAdminsCreateProjects: true,
  allowNonAdminsManageSshFleets: true,
  allowManagersManageSecrets: false,
};

/** Settings of the domain services, already read from the environment by the server. */
export interface CoreSettings {
  /** Root of the server's files (`~/.dstack/server` by default). */
  serverDir: string;
  /** The version reported by `get_info`; null for a development build. */
  serverVersion: string | null;
  /** Mutable: config.yml applies it at start. */
  defaultPermissions: DefaultPermissions;
  /** How many projects a non-admin user may own. */
  userProjectQuota: number;
  /**
   * `DSTACK_SERVER_EVENTS_TTL_SECONDS`: events older than this are deleted; 0 stores no
   * events at all. Unset means the original's 30 days.
   */
  eventsTtlSeconds?: number;
  /**
   * `DSTACK_SERVER_METRICS_RUNNING_TTL_SECONDS`: a running job's metrics points older than
   * this are deleted. Unset means the original's hour.
   */
  metricsRunningTtlSeconds?: number;
  /**
   * `DSTACK_SERVER_METRICS_FINISHED_TTL_SECONDS`: a finished job's metrics points older than
   * this are deleted. Unset means the original's 7 days.
   */
  metricsFinishedTtlSeconds?: number;
}

/** The events TTL the original uses when none is set: 30 days. */
export const defaultEventsTtlSeconds = 30 * 24 * 3600;

/** How long a running job's metrics points are kept when no TTL is set: one hour. */
export const defaultMetricsRunningTtlSeconds = 3600;

/** How long a finished job's metrics points are kept when no TTL is set: 7 days. */
export const defaultMetricsFinishedTtlSeconds = 7 * 24 * 3600;
