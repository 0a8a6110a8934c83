import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { IncomingMessage, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createClient, DstackApiError } from '@dstack/client';
import type { DstackClient, Run } from '@dstack/client';

const fixture = (name: string): string =>
  fileURLToPath(new URL(`../../../../shared/fixtures/configs/${name}`, import.meta.url));

interface Seen {
  method: string;
  path: string;
  authorization: string | undefined;
  body: Record<string, unknown>;
}

type Handler = (seen: Seen) => { status?: number; body: unknown };

/** A stand-in dstack server on loopback that records requests and answers from a script. */
class FakeServer {
  readonly seen: Seen[] = [];
  handlers: Handler[] = [];
  server: Server;

  constructor() {
    this.server = createServer((request, response) => {
      void readBody(request).then((text) => {
        const seen: Seen = {
          method: request.method ?? '',
          path: request.url ?? '',
          authorization: request.headers.authorization,
          body: text === '' ? {} : JSON.parse(text) as Record<string, unknown>,
        };
        this.seen.push(seen);
        const handler = this.handlers.shift();
        const answer = handler === undefined
          ? { status: 500, body: { detail: `unexpected ${seen.path}` } }
          : handler(seen);
        response.writeHead(answer.status ?? 200, { 'content-type': 'application/json' });
        response.end(JSON.stringify(answer.body));
      });
    });
  }

  url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }
}

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    request.on('error', reject);
  });
}

const submissionId = '11111111-1111-4111-8111-111111111111';

function run(status: Run['status'], submissions: string[] = [submissionId]): Run {
  return {
    id: '22222222-2222-4222-8222-222222222222',
    project_name: 'main',
    status,
    termination_reason: null,
    run_spec: { run_name: 'hello', configuration: {}, configuration_path: null, profile: null },
    jobs: [{
      job_spec: { job_name: 'hello-0-0', job_num: 0, replica_num: 0 },
      job_submissions: submissions.map((id, index) => ({
        id,
        submission_num: index,
        status: status === 'done' ? 'done' : 'running',
        termination_reason: null,
        exit_status: null,
      })),
    }],
    latest_job_submission: null,
  };
}

const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');
const event = (timestamp: string, source: string, text: string): object =>
  ({ timestamp, log_source: source, message: b64(text) });

describe('@dstack/client', () => {
  const fake = new FakeServer();
  let client: DstackClient;

  beforeAll(async () => {
    await new Promise<void>((resolve) => fake.server.listen(0, '127.0.0.1', resolve));
    client = createClient({ url: fake.url(), token: 'secret-token', projectName: 'main' });
  });

  afterEach(() => {
    expect(fake.handlers).toEqual([]);
    fake.seen.length = 0;
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => fake.server.close(() => resolve()));
  });

  it('applies a YAML task as the CLI does: get_plan, then apply with the plan', async () => {
    const planned = {
      project_name: 'main',
      user: 'admin',
      run_spec: { run_name: 'hello', configuration: { type: 'task' }, planned: true },
      current_resource: null,
      action: 'create',
    };
    fake.handlers = [() => ({ body: planned }), () => ({ body: run('submitted') })];

    const result = await client.apply(fixture('task-hello.dstack.yml'));

    expect(result.kind).toBe('run');
    expect(fake.seen.map((seen) => [seen.method, seen.path])).toEqual([
      ['POST', '/api/project/main/runs/get_plan'],
      ['POST', '/api/project/main/runs/apply'],
    ]);
    expect(fake.seen[0].authorization).toBe('Bearer secret-token');
    expect(fake.seen[0].body).toEqual({
      run_spec: {
        run_name: 'hello',
        configuration_path: fixture('task-hello.dstack.yml'),
        profile: null,
        configuration: {
          type: 'task',
          name: 'hello',
          env: ['GREETING=hello'],
          commands: [
            'echo "$GREETING from node $DSTACK_NODE_RANK of $DSTACK_NODES_NUM"',
            'for i in 1 2 3; do echo "line $i"; sleep 1; done',
            'echo "to stderr" >&2',
          ],
        },
      },
    });
    expect(fake.seen[1].body).toEqual({
      plan: { run_spec: planned.run_spec, current_resource: null },
      force: false,
    });
  });

  it('refuses a YAML file that holds no configuration, before any request', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'client-yaml-'));

    try {
      const path = join(dir, 'list.dstack.yml');
      await writeFile(path, '- just\n- a list\n');

      await expect(client.apply(path)).rejects.toThrow(`${path} does not hold a configuration`);
      expect(fake.seen).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('applies an object with a repo and a name override', async () => {
    fake.handlers = [
      (seen) => ({ body: { run_spec: seen.body.run_spec, current_resource: null } }),
      () => ({ body: run('submitted') }),
    ];

    await client.applyRun(
      { type: 'task', commands: ['true'] },
      { name: 'other', repoId: 'my-repo', repoData: { repo_type: 'virtual' }, force: true },
    );

    expect(fake.seen[0].body.run_spec).toEqual({
      run_name: 'other',
      configuration: { type: 'task', commands: ['true'], name: 'other' },
      configuration_path: null,
      profile: null,
      repo_id: 'my-repo',
      repo_data: { repo_type: 'virtual' },
    });
    expect(fake.seen[1].body.force).toBe(true);
  });

  it('applies a YAML fleet through fleets/get_plan and fleets/apply', async () => {
    const spec = { configuration: { type: 'fleet', name: 'laptop' }, profile: null };
    fake.handlers = [
      () => ({ body: { project_name: 'main', spec, current_resource: null } }),
      () => ({ body: { id: 'f', name: 'laptop', status: 'active', spec, instances: [] } }),
    ];

    const result = await client.apply(fixture('fleet-local.dstack.yml'));

    expect(result).toMatchObject({ kind: 'fleet', fleet: { name: 'laptop' } });
    expect(fake.seen.map((seen) => seen.path)).toEqual([
      '/api/project/main/fleets/get_plan',
      '/api/project/main/fleets/apply',
    ]);
    expect(fake.seen[0].body).toEqual({
      spec: {
        configuration: {
          type: 'fleet', name: 'laptop', nodes: '0..2', backends: ['local'], idle_duration: '10m',
        },
        configuration_path: fixture('fleet-local.dstack.yml'),
        profile: null,
      },
    });
    expect(fake.seen[1].body).toEqual({ plan: { spec, current_resource: null }, force: false });
  });

  it('waits for a run to reach a status', async () => {
    fake.handlers = [
      () => ({ body: run('provisioning') }),
      () => ({ body: run('running') }),
      () => ({ body: run('done') }),
    ];

    const done = await client.waitForRun('hello', { intervalMillis: 10 });

    expect(done.status).toBe('done');
    expect(fake.seen.map((seen) => seen.body)).toEqual([
      { run_name: 'hello' }, { run_name: 'hello' }, { run_name: 'hello' },
    ]);
  });

  it('gives up waiting after the timeout', async () => {
    fake.handlers = [() => ({ body: run('running') }), () => ({ body: run('running') })];

    await expect(client.waitForRun('hello', { intervalMillis: 30, timeoutMillis: 50 }))
      .rejects.toThrow('run hello is still running');
    fake.handlers = [];
  });

  it('streams logs ascending by 1000, following next_token, then from the last timestamp',
    async () => {
      const submission = submissionId;
      fake.handlers = [
        () => ({ body: run('running') }),
        () => ({
          body: {
            logs: [event('2026-01-01T00:00:00Z', 'stdout', 'a\n')],
            next_token: '1',
          },
        }),
        () => ({
          body: {
            logs: [event('2026-01-01T00:00:00.001000Z', 'stderr', 'é\n')],
            next_token: null,
          },
        }),
        () => ({ body: run('done') }),
        () => ({
          body: {
            logs: [event('2026-01-01T00:00:01Z', 'stdout', 'end')],
            next_token: null,
          },
        }),
      ];

      const lines = [];

      for await (const line of client.logs('hello', { intervalMillis: 10 })) {
        lines.push(line);
      }

      expect(lines.map((line) => [line.message, line.logSource])).toEqual([
        ['a\n', 'stdout'], ['é\n', 'stderr'], ['end', 'stdout'],
      ]);
      const polls = fake.seen.filter((seen) => seen.path === '/api/project/main/logs/poll');
      expect(polls.map((seen) => seen.body)).toEqual([
        {
          run_name: 'hello', job_submission_id: submission, start_time: null, end_time: null,
          descending: false, next_token: null, limit: 1000, diagnose: false,
        },
        {
          run_name: 'hello', job_submission_id: submission, start_time: null, end_time: null,
          descending: false, next_token: '1', limit: 1000, diagnose: false,
        },
        {
          run_name: 'hello', job_submission_id: submission,
          start_time: '2026-01-01T00:00:00.001000Z', end_time: null,
          descending: false, next_token: null, limit: 1000, diagnose: false,
        },
      ]);
    });

  it('reads the rest of a retried submission, then follows the new one', async () => {
    const retried = '33333333-3333-4333-8333-333333333333';
    fake.handlers = [
      () => ({ body: run('running') }),
      () => ({ body: { logs: [event('2026-01-01T00:00:00Z', 'stdout', 'try 1\n')] } }),
      () => ({ body: run('running', [submissionId, retried]) }),
      () => ({ body: { logs: [event('2026-01-01T00:00:01Z', 'stdout', 'exit 3\n')] } }),
      () => ({ body: { logs: [event('2026-01-01T00:00:02Z', 'stdout', 'try 2\n')] } }),
      () => ({ body: run('done', [submissionId, retried]) }),
      () => ({ body: { logs: [] } }),
    ];

    const lines = [];

    for await (const line of client.logs('hello', { intervalMillis: 10 })) {
      lines.push([line.jobSubmissionId, line.message]);
    }

    expect(lines).toEqual([
      [submissionId, 'try 1\n'], [submissionId, 'exit 3\n'], [retried, 'try 2\n'],
    ]);
    const polls = fake.seen.filter((seen) => seen.path.endsWith('/logs/poll'));
    expect(polls.map((seen) => [seen.body.job_submission_id, seen.body.start_time])).toEqual([
      [submissionId, null],
      [submissionId, '2026-01-01T00:00:00Z'],
      [retried, null],
      [retried, '2026-01-01T00:00:02Z'],
    ]);
  });

  it('stops and deletes runs and fleets with the bodies the API expects', async () => {
    fake.handlers = [() => ({ body: null }), () => ({ body: null }), () => ({ body: null })];

    await client.stopRuns(['hello'], { abort: true });
    await client.deleteRuns(['hello']);
    await client.deleteFleets(['laptop']);

    expect(fake.seen.map((seen) => [seen.path, seen.body])).toEqual([
      ['/api/project/main/runs/stop', { runs_names: ['hello'], abort: true }],
      ['/api/project/main/runs/delete', { runs_names: ['hello'] }],
      ['/api/project/main/fleets/delete', { names: ['laptop'] }],
    ]);
  });

  it("surfaces the server's detail message in each error shape", async () => {
    fake.handlers = [
      () => ({
        status: 400,
        body: { detail: [{ msg: 'Cannot delete active runs: [hello]', code: 'error' }] },
      }),
      () => ({ status: 403, body: { detail: { msg: 'Access denied', code: null } } }),
      () => ({
        status: 422,
        body: { detail: [{ type: 'missing', loc: ['body', 'run_name'], msg: 'Field required' }] },
      }),
      () => ({
        status: 400,
        body: { detail: [{ msg: 'Run not found', code: 'resource_not_exists' }] },
      }),
    ];

    const first = await client.deleteRuns(['hello']).catch((error: unknown) => error);
    expect(first).toBeInstanceOf(DstackApiError);
    expect((first as DstackApiError).message).toContain('Cannot delete active runs: [hello]');
    expect((first as DstackApiError).status).toBe(400);
    await expect(client.stopRuns(['x'])).rejects.toThrow('403 Access denied');
    await expect(client.request('/api/project/main/runs/get', {}))
      .rejects.toThrow('422 body.run_name: Field required');
    await expect(client.getRun('nope')).rejects.toMatchObject({
      status: 400, code: 'resource_not_exists',
    });
  });
});
