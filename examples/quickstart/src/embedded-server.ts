import { join } from 'node:path';
import {
  createCipher,
  createFileLogStore,
  createLocalBackendProvider,
} from '@dstack/core';
import type { Logger } from '@dstack/core';
import { createServer } from '@dstack/server';
import type { DstackServer } from '@dstack/server';
import {
  createSqliteStateStore,
  migrateToLatest,
  openSqliteDatabase,
} from '@dstack/storage-sqlite';

export interface EmbeddedServer {
  server: DstackServer;
  url: string;
  /** Stops the server, then closes the database. */
  close(): Promise<void>;
}

/**
 * Starts a dstack server inside this process as the bin would by default: SQLite and file
 * logs under `serverDir`, and project `main` with the `local` backend.
 */
export async function startEmbeddedServer(
  serverDir: string,
  logger?: Logger,
): Promise<EmbeddedServer> {
  const db = openSqliteDatabase(join(serverDir, 'data', 'sqlite.db'));
  await migrateToLatest(db);
  const store = createSqliteStateStore({ db, logger });
  const server = await createServer({
    store,
    logStore: createFileLogStore({ serverDir }),
    cipher: createCipher(),
    providers: [createLocalBackendProvider({ serverDir, logger })],
    logger,
    settings: { serverDir },
    config: { projects: [{ name: 'main', backends: [{ type: 'local' }] }] },
  });

  try {
    const url = await server.listen({ host: '127.0.0.1', port: 0 });
    return {
      server,
      url,
      async close() {
        try {
          await server.close();
        } finally {
          await store.close();
        }
      },
    };
  } catch (error) {
    await server.close();
    await store.close();
    throw error;
  }
}
