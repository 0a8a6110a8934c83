import { createServer as createHttpServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import {
  createCipher,
  createFileLogStore,
  createLocalBackendProvider,
} from '@dstack/core';
import { createServer } from '@dstack/server';
import type { DstackServer } from '@dstack/server';
import {
  createSqliteStateStore,
  migrateToLatest,
  openSqliteDatabase,
} from '@dstack/storage-sqlite';

export interface HostAppOptions {
  /** The dstack server's data directory. */
  serverDir: string;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
}

export interface HostApp {
  url: string;
  /** The embedded dstack server, for in-process calls. */
  dstack: DstackServer;
  close(): Promise<void>;
}

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'content-type': 'application/json' });
  response.end(JSON.stringify(body));
}

/**
 * Someone else's Node app with its own routes under `/app/`, and a dstack server mounted in
 * the same HTTP server for everything else, so the dstack CLI and UI can use the same URL.
 */
export async function startHostApp(options: HostAppOptions): Promise<HostApp> {
  const db = openSqliteDatabase(join(options.serverDir, 'data', 'sqlite.db'));
  await migrateToLatest(db);
  const store = createSqliteStateStore({ db });
  const dstack = await createServer({
    store,
    logStore: createFileLogStore({ serverDir: options.serverDir }),
    cipher: createCipher(),
    providers: [createLocalBackendProvider({ serverDir: options.serverDir })],
    settings: { serverDir: options.serverDir },
    config: { projects: [{ name: 'main', backends: [{ type: 'local' }] }] },
  });
  // Routing requests from our own HTTP server needs the app ready, not listening.
  await dstack.app.ready();

  async function ownRoute(request: IncomingMessage, response: ServerResponse, path: string) {
    if (request.method === 'GET' && path === '/app/hello') {
      sendJson(response, 200, { message: 'hello from the host app' });
      return;
    }

    if (request.method === 'GET' && path === '/app/runs') {
      // In-process call: no socket, the admin token never leaves the process.
      const answer = await dstack.inject({
        method: 'POST',
        url: '/api/runs/list',
        headers: { authorization: `Bearer ${dstack.adminToken}` },
        payload: {},
      });

      if (answer.statusCode !== 200) {
        sendJson(response, answer.statusCode, answer.json());
        return;
      }

      const runs = answer.json() as { run_spec: { run_name: string }; status: string }[];
      sendJson(response, 200, {
        runs: runs.map((run) => ({ name: run.run_spec.run_name, status: run.status })),
      });
      return;
    }

    sendJson(response, 404, { error: `no route ${request.method} ${path}` });
  }

  const http = createHttpServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://localhost').pathname;

    if (path.startsWith('/app/')) {
      ownRoute(request, response, path).catch((error: unknown) => {
        sendJson(response, 500, { error: error instanceof Error ? error.message : 'error' });
      });
      return;
    }

    dstack.app.routing(request, response);
  });

  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve);
  });
  const address = http.address() as AddressInfo;

  return {
    url: `http://${address.address}:${address.port}`,
    dstack,
    async close() {
      await new Promise<void>((resolve) => {
        http.close(() => resolve());
        http.closeAllConnections();
      });
      await dstack.close();
      await store.close();
    },
  };
}
