import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import {
  createCipher,
  createMemoryLogStore,
  createMemoryStateStore,
} from '@dstack/core';
import type { Logger } from '@dstack/core';
import { createServer } from '../src/create-server.js';
import type { DstackServer } from '../src/create-server.js';

const sharedFixtures = join(import.meta.dirname, '../../../../shared/fixtures');

const value = 'sk-never-in-a-plan-4321';
const token = 'plan-admin-token';
let server: DstackServer;
let lines: string[];

function capturingLogger(): Logger {
  const at = (level: string) => (fields: object | string, message?: string): void => {
    lines.push(JSON.stringify({ level, fields, message }));
  };
  const logger: Logger = {
    error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug'),
    child: () => logger,
  };

  return logger;
}

async function call(url: string, payload: unknown) {
  const response = await server.inject({
    method: 'POST',
    url,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    payload: JSON.stringify(payload),
  });

  return { status: response.statusCode, body: response.body };
}

beforeEach(async () => {
  lines = [];
  const secret = Buffer.alloc(32, 3).toString('base64');
  server = await createServer({
    store: createMemoryStateStore(),
    logStore: createMemoryLogStore(),
    cipher: createCipher([{ type: 'aes', name: 'k', secret }]),
    logger: capturingLogger(),
    adminToken: token,
    settings: { serverDir: '/nonexistent' },
    startupHooks: [],
  });
});

afterEach(async () => {
  await server.close();
});

describe('a secret value stays out of plans, runs and logs', () => {
  it('task-secret: get_plan, apply, get and list never show the value', async () => {
    const configuration = parse(
      readFileSync(join(sharedFixtures, 'configs/task-secret.dstack.yml'), 'utf8'),
    ) as Record<string, unknown>;
    const runSpec = { run_name: 'uses-secret', configuration, ssh_key_pub: 'ssh-rsa AAA test' };
    const saved = await call('/api/project/main/secrets/create_or_update', {
      name: 'api_key', value,
    });
    expect(saved.status).toBe(200);

    const plan = await call('/api/project/main/runs/get_plan', { run_spec: runSpec });
    const applied = await call('/api/project/main/runs/apply', {
      plan: { run_spec: runSpec, current_resource: null }, force: false,
    });
    const got = await call('/api/project/main/runs/get', { run_name: 'uses-secret' });
    const listed = await call('/api/runs/list', {});

    for (const response of [plan, applied, got, listed]) {
      expect(response.status, response.body).toBe(200);
      expect(response.body).not.toContain(value);
    }

    expect(plan.body).toContain('${{ secrets.api_key }}');
    expect(lines.join('\n')).not.toContain(value);
  });
});
