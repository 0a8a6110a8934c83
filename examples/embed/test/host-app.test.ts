import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, DstackApiError } from '@dstack/client';
import { startHostApp } from '../src/host-app.js';
import type { HostApp } from '../src/host-app.js';

describe('dstack embedded in a host app', () => {
  let serverDir: string;
  let app: HostApp;

  beforeAll(async () => {
    serverDir = await mkdtemp(join(tmpdir(), 'embed-test-'));
    app = await startHostApp({ serverDir });
  });

  afterAll(async () => {
    await app?.close();
    await rm(serverDir, { recursive: true, force: true });
  });

  it("serves the host app's own routes", async () => {
    const answer = await fetch(`${app.url}/app/hello`);

    expect(answer.status).toBe(200);
    expect(await answer.json()).toEqual({ message: 'hello from the host app' });
  });

  it('serves the dstack API from the same port', async () => {
    const health = await fetch(`${app.url}/healthcheck`);
    expect(await health.json()).toEqual({ status: 'running' });

    const client = createClient({ url: app.url, token: app.dstack.adminToken });
    const projects = await client.request<{ project_name: string }[]>('/api/projects/list', {});
    expect(projects.map((project) => project.project_name)).toContain('main');
  });

  it("answers dstack's own errors for a bad token", async () => {
    const client = createClient({ url: app.url, token: 'not-a-token' });

    const error = await client.request('/api/projects/list', {}).catch((caught: unknown) => caught);

    expect(error).toBeInstanceOf(DstackApiError);
    expect((error as DstackApiError).status).toBe(403);
    expect((error as DstackApiError).message).toContain('Invalid token');
  });

  it('lets the host app call dstack in process', async () => {
    const answer = await fetch(`${app.url}/app/runs`);

    expect(answer.status).toBe(200);
    expect(await answer.json()).toEqual({ runs: [] });
  });

  it('runs a task for a client that talks to the host app, and lists it in the app', async () => {
    const client = createClient({ url: app.url, token: app.dstack.adminToken });
    const applied = await client.apply({
      type: 'task', name: 'embedded', commands: ['echo "ran inside the host app"'],
    });
    expect(applied.kind).toBe('run');
    const lines: string[] = [];

    for await (const line of client.logs('embedded', { intervalMillis: 200 })) {
      lines.push(line.message);
    }

    expect(lines).toEqual(['ran inside the host app\n']);
    const answer = await fetch(`${app.url}/app/runs`);
    expect(await answer.json()).toEqual({ runs: [{ name: 'embedded', status: 'done' }] });
  }, 60_000);
});
