import type { SshConnection } from './ssh-connection.js';

/** Keeps one open connection per host and closes it after a while without use. */
export interface ConnectionPool {
  /** The pooled connection for `key`, opened with `open` when there is none or it died. */
  get(key: string, open: () => Promise<SshConnection>): Promise<SshConnection>;
  /** Closes and forgets the connection for `key`. */
  drop(key: string): void;
  /** Closes every connection; the pool can still open new ones. */
  closeAll(): void;
}

interface Entry {
  connection: Promise<SshConnection>;
  lastUsedMillis: number;
}

export interface ConnectionPoolOptions {
  idleMillis: number;
}

/** Creates a pool; its sweeper timer never keeps the process alive. */
export function createConnectionPool(options: ConnectionPoolOptions): ConnectionPool {
  const entries = new Map<string, Entry>();
  let sweeper: NodeJS.Timeout | null = null;

  const closeEntry = (entry: Entry): void => {
    entry.connection.then((connection) => connection.close()).catch(() => undefined);
  };

  const sweep = (): void => {
    const now = Date.now();
    for (const [key, entry] of entries) {
      if (now - entry.lastUsedMillis > options.idleMillis) {
        entries.delete(key);
        closeEntry(entry);
      }
    }

    if (entries.size === 0 && sweeper !== null) {
      clearInterval(sweeper);
      sweeper = null;
    }
  };

  const get = async (key: string, open: () => Promise<SshConnection>): Promise<SshConnection> => {
    const existing = entries.get(key);
    if (existing !== undefined) {
      existing.lastUsedMillis = Date.now();
      const connection = await existing.connection.catch(() => null);
      if (connection !== null && !connection.closed) {
        return connection;
      }

      if (entries.get(key) === existing) {
        entries.delete(key);
      }
    }

    const entry: Entry = { connection: open(), lastUsedMillis: Date.now() };
    entries.set(key, entry);
    entry.connection.catch(() => {
      if (entries.get(key) === entry) {
        entries.delete(key);
      }
    });
    if (sweeper === null) {
      sweeper = setInterval(sweep, Math.max(1000, Math.floor(options.idleMillis / 2)));
      sweeper.unref();
    }

    return entry.connection;
  };

  return {
    get,
    drop: (key) => {
      const entry = entries.get(key);
      if (entry !== undefined) {
        entries.delete(key);
        closeEntry(entry);
      }
    },
    closeAll: () => {
      for (const entry of entries.values()) {
        closeEntry(entry);
      }

      entries.clear();
      if (sweeper !== null) {
        clearInterval(sweeper);
        sweeper = null;
      }
    },
  };
}
