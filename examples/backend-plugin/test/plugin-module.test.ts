import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { silentLogger } from '@dstack/core';
import { contractRequirements } from '@dstack/core/testing';
import { createBackendProvider } from '../src/index.js';

describe('the module the dstack-server bin loads', () => {
  let serverDir = '';

  afterAll(async () => {
    await rm(serverDir, { recursive: true, force: true });
  });

  it('makes a sandbox provider that keeps its scratch space under the server directory',
    async () => {
      serverDir = await mkdtemp(join(tmpdir(), 'plugin-module-'));
      const provider = createBackendProvider({ serverDir, logger: silentLogger });
      const settings = { projectName: 'main', config: { type: 'sandbox' }, creds: null };
      const [offer] = await provider.getOffers({
        ...settings,
        requirements: contractRequirements(1),
      });

      const data = await provider.createInstance({
        ...settings, offer, instanceName: 'sandbox-0', instanceId: randomUUID(),
      });

      expect(provider.type).toBe('sandbox');
      expect(JSON.parse(data.backend_data ?? '{}')).toEqual({
        scratchDir: join(serverDir, 'sandbox'),
      });
    });
});
