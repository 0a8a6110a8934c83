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
}

/** The events TTL the original uses when none is set: 30 days. */
export const defaultEventsTtlSeconds = 30 * 24 * 3600;
