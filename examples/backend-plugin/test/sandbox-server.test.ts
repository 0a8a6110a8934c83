import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runSandboxDemo } from '../src/demo.js';

describe('the sandbox plugin registered through createServer', () => {
  const dirs: string[] = [];

  afterAll(async () => {
    for (const dir of dirs) {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('runs a task on the sandbox backend and keeps its logs', async () => {
    const serverDir = await mkdtemp(join(tmpdir(), 'sandbox-server-'));
    dirs.push(serverDir);

    const result = await runSandboxDemo(serverDir);

    expect(result.status).toBe('done');
    expect(result.backend).toBe('sandbox');
    expect(result.output).toContain('hello from the sandbox\n');
    expect(result.output).toMatch(/home is .*sandbox/);
  }, 90_000);
});
