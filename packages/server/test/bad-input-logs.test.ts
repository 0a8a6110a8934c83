import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createFileLogStore, newId } from '@dstack/core';
import type { Logger } from '@dstack/core';
import type { DstackServer } from '../src/index.js';
import { createTestServer, post } from './helpers.js';

let server: DstackServer;
let serverDir: string;
const errors: unknown[] = [];

const logger: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: (...args: unknown[]) => {
    errors.push(args);
  },
  child: () => logger,
};

beforeEach(async () => {
  errors.length = 0;
  serverDir = mkdtempSync(join(tmpdir(), 'bad-input-logs-'));
  server = await createTestServer({
    logStore: createFileLogStore({ serverDir }),
    logger,
    settings: { serverDir },
  });
});

afterEach(async () => {
  await server.close();
  rmSync(serverDir, { recursive: true, force: true });
});

function poll(runName: string) {
  return post(server, '/api/project/main/logs/poll', server.adminToken,
    { run_name: runName, job_submission_id: newId() });
}

describe('logs/poll with run names no run can have, on the file log store', () => {
  it('answers a name too long for a file with the original\'s 400, logging no failure',
    async () => {
      const response = await poll('x'.repeat(5000));

      expect(response.statusCode, response.body).toBe(400);
      expect(response.json()).toEqual({ detail: 'Filename too long' });
      expect(errors).toEqual([]);
    });

  it('answers a name that would leave the logs directory with no logs', async () => {
    for (const name of ['..', '../../etc', 'a/b']) {
      const response = await poll(name);

      expect(response.statusCode, response.body).toBe(200);
      expect(response.json()).toEqual({ logs: [], external_url: null, next_token: null });
    }
  });
});
