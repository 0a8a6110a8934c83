import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLocalBackendProvider } from '@dstack/core';
import type { BackendProvider } from '@dstack/core';
import {
  checkServerConfigBackends,
  loadServerConfig,
  ServerConfigError,
} from '../src/config/server-config.js';

const sharedFixtures = join(import.meta.dirname, '../../../../shared/fixtures');

let dir: string;
let providers: BackendProvider[];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dstack-config-backends-'));
  providers = [createLocalBackendProvider({ serverDir: dir })];
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function problemsOf(text: string): Promise<string[]> {
  const path = join(dir, 'config.yml');
  await writeFile(path, text);
  const config = await loadServerConfig(path);

  try {
    checkServerConfigBackends(path, config!, providers);
  } catch (error) {
    expect(error).toBeInstanceOf(ServerConfigError);
    expect((error as Error).message).toContain(path);
    return (error as ServerConfigError).problems;
  }

  return [];
}

// These used to start the server with only a warning in the log, although the README says
// an unknown key or an invalid value in config.yml stops the start.
describe('config.yml backends', () => {
  it('names an unknown backend type and where it is', async () => {
    const problems = await problemsOf(
      'projects:\n  - name: main\n    backends:\n      - type: local\n      - type: nosuchcloud\n',
    );

    expect(problems).toEqual([
      'projects[0].backends[1].type: unknown backend type "nosuchcloud" (this server has: local)',
    ]);
  });

  it("names a key the backend's own schema does not know", async () => {
    const problems = await problemsOf(
      'projects:\n  - name: main\n  - name: other\n    backends:\n      - type: local\n' +
        '        regions: [here]\n',
    );

    expect(problems).toEqual(['projects[1].backends[0].regions: unknown key']);
  });

  it('accepts the default and the fixtures, and leaves types this server lacks to the sync',
    async () => {
      expect(await problemsOf('projects:\n  - name: main\n    backends:\n      - type: local\n'))
        .toEqual([]);
      expect(await problemsOf(
        'projects:\n  - name: main\n    backends:\n      - type: aws\n' +
          '        creds: {type: default}\n',
      )).toEqual([]);
      const aes = await loadServerConfig(join(sharedFixtures, 'server/config-aes.yml'));
      expect(() => checkServerConfigBackends('config-aes.yml', aes!, providers)).not.toThrow();
    });
});
