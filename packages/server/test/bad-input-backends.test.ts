import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLocalBackendProvider } from '@dstack/core';
import type { DstackServer } from '../src/index.js';
import { createTestServer, post } from './helpers.js';

let server: DstackServer;
let serverDir: string;
const warnings: Error[] = [];
const onWarning = (warning: Error) => warnings.push(warning);

beforeEach(async () => {
  warnings.length = 0;
  process.on('warning', onWarning);
  serverDir = mkdtempSync(join(tmpdir(), 'bad-input-backends-'));
  server = await createTestServer({ providers: [createLocalBackendProvider({ serverDir })] });
  const created = await post(server, '/api/projects/create', server.adminToken,
    { project_name: 'yamls' });
  expect(created.statusCode, created.body).toBe(200);
});

afterEach(async () => {
  process.off('warning', onWarning);
  await server.close();
  rmSync(serverDir, { recursive: true, force: true });
});

/** Lets warnings emitted during the request (they are queued on the next tick) arrive. */
function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

describe('backends/create_yaml and update_yaml with YAML tags the loader does not know', () => {
  const texts = ['!!js/function x\n', 'type: !!js/undefined local\n', 'type: !custom local\n'];

  for (const path of ['create_yaml', 'update_yaml']) {
    for (const text of texts) {
      it(`${path}: ${JSON.stringify(text)} is 400 "Error parsing YAML" and warns nobody`,
        async () => {
          const response = await post(server, `/api/project/yamls/backends/${path}`,
            server.adminToken, { config_yaml: text });
          await settle();

          expect(response.statusCode, response.body).toBe(400);
          expect(response.json()).toEqual({
            detail: [{ msg: 'Error parsing YAML', code: 'error' }],
          });
          expect(warnings.map((warning) => warning.message)).toEqual([]);
        });
    }
  }

  it('still creates a backend from plain YAML and leaves the project as it was on errors',
    async () => {
      await post(server, '/api/project/yamls/backends/create_yaml', server.adminToken,
        { config_yaml: 'type: !!js/undefined local\n' });
      const before = await post(server, '/api/projects/yamls/get', server.adminToken, {});
      const created = await post(server, '/api/project/yamls/backends/create_yaml',
        server.adminToken, { config_yaml: 'type: local\n' });
      const after = await post(server, '/api/projects/yamls/get', server.adminToken, {});

      expect(before.json().backends).toEqual([]);
      expect(created.statusCode, created.body).toBe(200);
      expect(after.json().backends).toEqual([{ name: 'local', config: { type: 'local' } }]);
    });
});
