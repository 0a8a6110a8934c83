import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';

// Runs the fixture configurations of ../shared/fixtures against the built bin (`npm run
// build` in core and server first) with the local backend, as a user would.

const bin = join(import.meta.dirname, '../dist/cli.js');
const fixtures = join(import.meta.dirname, '../../../../shared/fixtures/configs');
const token = 'e2e-admin-token';
let dir: string;
let server: ChildProcess | null = null;
let url = '';

type Json = Record<string, any>;

async function startBin(): Promise<void> {
  const child = spawn(process.execPath, [bin, '--port', '0'], {
    env: {
      ...process.env,
      DSTACK_SERVER_DIR: dir,
      DSTACK_SERVER_ADMIN_TOKEN: token,
      DSTACK_SERVER_LOG_LEVEL: 'WARNING',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  server = child;
  let output = '';

  url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no start: ${output}`)), 30_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const match = /is running at (\S+)/.exec(output);

      if (match !== null) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
    child.stderr!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.once('exit', (code) => reject(new Error(`exited ${code}: ${output}`)));
  });
}

async function stopBin(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  const child = server;

  if (child === null || child.exitCode !== null) {
    return;
  }

  await new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.kill(signal);
  });
  server = null;
}

async function api(path: string, body: unknown = {}): Promise<{ status: number; json: any }> {
  const response = await fetch(`${url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, json: text === '' ? null : JSON.parse(text) };
}

async function fixture(name: string): Promise<Json> {
  return parse(await readFile(join(fixtures, `${name}.dstack.yml`), 'utf8')) as Json;
}

async function applyConfig(configuration: Json): Promise<{ status: number; json: any }> {
  const runSpec = {
    run_name: configuration.name ?? null,
    configuration,
    ssh_key_pub: 'ssh-rsa AAA e2e',
  };
  return api('/api/project/main/runs/apply', {
    plan: { run_spec: runSpec, current_resource: null },
    force: false,
  });
}

async function runOf(name: string): Promise<Json> {
  const got = await api('/api/project/main/runs/get', { run_name: name });
  expect(got.status, JSON.stringify(got.json)).toBe(200);
  return got.json as Json;
}

async function waitFor(name: string, statuses: string[], timeoutMillis = 60_000): Promise<Json> {
  const deadline = Date.now() + timeoutMillis;

  for (;;) {
    const run = await runOf(name);

    if (statuses.includes(run.status)) {
      return run;
    }

    if (Date.now() > deadline) {
      throw new Error(`${name} stayed ${run.status}: ${JSON.stringify(run.jobs.map(
        (job: Json) => job.job_submissions))}`);
    }

    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

interface Event { timestamp: string; log_source: string; text: string }

async function logsOf(runName: string, submissionId: string, diagnose = false): Promise<Event[]> {
  const events: Event[] = [];
  let nextToken: string | null = null;

  do {
    const page = await api('/api/project/main/logs/poll', {
      run_name: runName, job_submission_id: submissionId, limit: 1000, diagnose,
      next_token: nextToken,
    });
    expect(page.status, JSON.stringify(page.json)).toBe(200);
    expect(page.json.logs.length).toBeLessThanOrEqual(1000);
    events.push(...page.json.logs.map((event: Json) => ({
      timestamp: event.timestamp,
      log_source: event.log_source,
      text: Buffer.from(event.message, 'base64').toString('utf8'),
    })));
    nextToken = page.json.next_token;
  } while (nextToken !== null);

  return events;
}

function latest(run: Json, jobIndex = 0): Json {
  const submissions = run.jobs[jobIndex].job_submissions;
  return submissions[submissions.length - 1];
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dstack-e2e-'));
  await startBin();
  const types = await api('/api/backends/list_types');
  expect(types.json).toContain('local');
  const project = await api('/api/projects/main/get');

  // The default config.yml gives main a local backend; add it when the sync has not run.
  if (!project.json.backends.some((backend: Json) => backend.name === 'local')) {
    const created = await api('/api/project/main/backends/create', { type: 'local' });
    expect(created.status, JSON.stringify(created.json)).toBe(200);
  }

  const deadline = Date.now() + 10_000;

  while (Date.now() < deadline) {
    const fleets = await api('/api/project/main/fleets/list');

    if (fleets.json.length > 0) {
      return;
    }

    await new Promise((resolve) => setTimeout(resolve, 200));
  }

  throw new Error('project main got no default fleet');
}, 60_000);

afterAll(async () => {
  // Jobs outlive the server by design: end whatever a failed test left running.
  if (server !== null) {
    const runs = await api('/api/runs/list', { only_active: true });
    const names = (runs.json as Json[]).map((run) => run.run_spec.run_name as string);
    await api('/api/project/main/runs/stop', { runs_names: names, abort: true });
    const deadline = Date.now() + 30_000;

    while (Date.now() < deadline &&
      (await api('/api/runs/list', { only_active: true })).json.length > 0) {
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  await stopBin();
  await rm(dir, { recursive: true, force: true });
});

describe('fixtures on the local backend through the bin', () => {
  it('task-hello: done with the greeting, three lines a second apart and stderr', async () => {
    const applied = await applyConfig(await fixture('task-hello'));
    expect(applied.status, JSON.stringify(applied.json)).toBe(200);
    const run = await waitFor('hello', ['done', 'failed', 'terminated']);
    const submission = latest(run);

    expect(run.status, JSON.stringify(submission)).toBe('done');
    expect(submission.exit_status).toBe(0);
    const events = await logsOf('hello', submission.id);
    const text = events.map((event) => event.text).join('');
    expect(text).toContain('hello from node 0 of 1');
    expect(text).toContain('to stderr');
    const lineTimes = [1, 2, 3].map((n) =>
      Date.parse(events.find((event) => event.text.includes(`line ${n}`))!.timestamp));
    expect(lineTimes[2]! - lineTimes[0]!).toBeGreaterThanOrEqual(1500);
  }, 60_000);

  it('task-image: the plan says the local backend runs no container images', async () => {
    const configuration = await fixture('task-image');
    const plan = await api('/api/project/main/runs/get_plan', {
      run_spec: { run_name: 'needs-image', configuration, ssh_key_pub: 'ssh-rsa AAA' },
    });

    expect(plan.status).toBe(400);
    expect(plan.json.detail[0].msg).toMatch(/no container images/);
    expect((await applyConfig(configuration)).status).toBe(400);
  });

  it('task-gpu: no offers, and the run fails with no capacity saying why', async () => {
    const configuration = await fixture('task-gpu');
    const plan = await api('/api/project/main/runs/get_plan', {
      run_spec: { run_name: 'needs-gpu', configuration, ssh_key_pub: 'ssh-rsa AAA' },
    });
    expect(plan.status, JSON.stringify(plan.json)).toBe(200);
    expect(plan.json.job_plans[0].offers).toEqual([]);

    await applyConfig(configuration);
    const run = await waitFor('needs-gpu', ['failed', 'done', 'terminated']);
    const submission = latest(run);

    expect(run.status).toBe('failed');
    expect(submission.termination_reason).toBe('failed_to_start_due_to_no_capacity');
    expect(submission.termination_reason_message).toMatch(/requirements/);
  }, 60_000);

  it('task-multinode: two jobs, each with its own rank, 2 nodes and one master', async () => {
    await applyConfig(await fixture('task-multinode'));
    const run = await waitFor('two-nodes', ['done', 'failed', 'terminated']);
    const submissions = run.jobs.map((job: Json) => latest({ jobs: [job] }));
    expect(run.status, JSON.stringify(submissions)).toBe('done');
    expect(run.jobs).toHaveLength(2);
    const texts = await Promise.all(run.jobs.map(async (job: Json) =>
      (await logsOf('two-nodes', job.job_submissions[0].id)).map((e) => e.text).join('')));
    const masters = new Set(texts.map((text) => /master=(\S+)/.exec(text)?.[1]));

    expect(texts.some((text) => text.includes('rank=0 nodes=2'))).toBe(true);
    expect(texts.some((text) => text.includes('rank=1 nodes=2'))).toBe(true);
    expect(masters.size).toBe(1);
    expect([...masters][0]).toMatch(/\d+\.\d+\.\d+\.\d+/);
  }, 60_000);

  it('task-secret: an error without the secret; its length, never its value, with it', async () => {
    const configuration = await fixture('task-secret');
    await applyConfig(configuration);
    const failed = await waitFor('uses-secret', ['failed', 'terminated', 'done']);
    const missing = latest(failed);
    expect(failed.status).not.toBe('done');
    expect(missing.termination_reason_message).toMatch(/api_key/);

    const value = 'very-secret-value-1234';
    const set = await api('/api/project/main/secrets/create_or_update', { name: 'api_key', value });
    expect(set.status, JSON.stringify(set.json)).toBe(200);
    await applyConfig(configuration);
    const run = await waitFor('uses-secret', ['done', 'failed', 'terminated']);
    const text = (await logsOf('uses-secret', latest(run).id)).map((e) => e.text).join('');

    expect(run.status).toBe('done');
    expect(text).toContain(`secret length ${value.length}`);
    expect(text).not.toContain(value);
  }, 60_000);

  it('task-long-output: every line back in order in pages of up to 1000', async () => {
    // The fixture is not valid YAML (`wide: ` inside a plain scalar on its last line, which
    // PyYAML rejects too), so its command lines are taken as written.
    const source = await readFile(join(fixtures, 'task-long-output.dstack.yml'), 'utf8');
    const commands = source.split('\n').filter((line) => line.startsWith('  - '))
      .map((line) => line.slice(4));
    expect(commands).toHaveLength(4);
    await applyConfig({ type: 'task', name: 'chatty', commands });
    const run = await waitFor('chatty', ['done', 'failed', 'terminated'], 120_000);
    expect(run.status).toBe('done');
    const text = (await logsOf('chatty', latest(run).id)).map((e) => e.text).join('');
    const rows = text.split('\n').filter((line) => line.startsWith('row '));

    expect(rows).toHaveLength(50_000);
    expect(rows[49_999]).toBe(`row 49999 ${'x'.repeat(49_999 % 300)}`);
    expect(rows.every((row, i) => row.startsWith(`row ${i} `) || row === `row ${i}`)).toBe(true);
    expect(text).toContain('no newline at end');
    expect(text).toContain('\uFFFD\uFFFD invalid utf-8 bytes\n');
    expect(text).toContain(`wide: ${'é'.repeat(40_000)}\n`);
  }, 180_000);

  it('dev-environment: accepted and running until stopped', async () => {
    await applyConfig(await fixture('dev-environment'));
    await waitFor('my-dev', ['running']);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect((await runOf('my-dev')).status).toBe('running');

    await api('/api/project/main/runs/stop', { runs_names: ['my-dev'], abort: false });
    const stopped = await waitFor('my-dev', ['terminated', 'failed', 'done'], 60_000);
    expect(stopped.status).toBe('terminated');
    expect(stopped.termination_reason).toBe('stopped_by_user');
  }, 90_000);

  it('fleet-local: a local fleet of 0 to 2 instances with a 10 minute idle duration', async () => {
    const configuration = await fixture('fleet-local');
    const applied = await api('/api/project/main/fleets/apply', {
      plan: { spec: { configuration }, current_resource: null },
      force: false,
    });
    expect(applied.status, JSON.stringify(applied.json)).toBe(200);
    expect(applied.json.spec.configuration).toMatchObject({
      name: 'laptop', backends: ['local'], idle_duration: 600, nodes: { min: 0, max: 2 },
    });
    expect(applied.json.instances).toEqual([]);
    expect(applied.json.status).toBe('active');
  });

  it('service-http: running and reachable through the server proxy', async () => {
    await applyConfig(await fixture('service-http'));
    await waitFor('http-service', ['running'], 60_000);
    let response: Response | null = null;
    const deadline = Date.now() + 20_000;

    while (Date.now() < deadline) {
      response = await fetch(`${url}/proxy/services/main/http-service/`);

      if (response.status === 200) {
        break;
      }

      await new Promise((resolve) => setTimeout(resolve, 300));
    }

    expect(response!.status).toBe(200);
    expect(await response!.text()).toMatch(/Directory listing/);
    await api('/api/project/main/runs/stop', { runs_names: ['http-service'], abort: false });
    await waitFor('http-service', ['terminated'], 60_000);
  }, 120_000);

  it('task-http and task-retry: max_duration ends one, the retry window the other', async () => {
    // The fixture listens on the fixed port 8000: wait for a run elsewhere to free it.
    const portFree = async () =>
      fetch('http://127.0.0.1:8000/').then(() => false, () => true);
    const portDeadline = Date.now() + 150_000;

    while (!(await portFree())) {
      expect(Date.now() < portDeadline, 'port 8000 stays in use by another process').toBe(true);
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }

    await applyConfig(await fixture('task-http'));
    await applyConfig(await fixture('task-retry'));
    await waitFor('http-task', ['running'], 60_000);
    let answered = false;
    const deadline = Date.now() + 20_000;

    while (!answered && Date.now() < deadline) {
      answered = await fetch('http://127.0.0.1:8000/').then((r) => r.status === 200, () => false);
      await new Promise((resolve) => setTimeout(resolve, 300));
    }

    expect(answered).toBe(true);
    const retried = await waitFor('flaky', ['failed', 'done', 'terminated'], 150_000);
    expect(retried.status).toBe('failed');
    expect(retried.termination_reason).toBe('retry_limit_exceeded');
    expect(retried.jobs[0].job_submissions.length).toBeGreaterThan(1);
    expect(retried.jobs[0].job_submissions.every((s: Json) => s.exit_status === 3)).toBe(true);

    const stopped = await waitFor('http-task', ['terminated', 'failed', 'done'], 150_000);
    const submission = latest(stopped);
    const runnerLog = (await logsOf('http-task', submission.id, true)).map((e) => e.text).join('');
    const jobLog = (await logsOf('http-task', submission.id)).map((e) => e.text).join('');
    expect(submission.status, `${JSON.stringify(submission)}\n${runnerLog}\n${jobLog}`)
      .toBe('terminated');
    expect(submission.termination_reason).toBe('max_duration_exceeded');
    expect(submission.error).toBe('max duration exceeded');
    // As in the original, a job ended by a reason that is not retried fails its run.
    expect(stopped.status).toBe('failed');
    expect(stopped.termination_reason).toBe('job_failed');
    expect(Date.parse(submission.finished_at) - Date.parse(submission.submitted_at))
      .toBeGreaterThanOrEqual(120_000);
  }, 480_000);

  it('a killed server finds its running job on restart and carries on', async () => {
    await applyConfig({
      type: 'task', name: 'survivor',
      commands: ['echo before', 'sleep 4', 'echo after'],
    });
    await waitFor('survivor', ['running']);
    await stopBin('SIGKILL');
    await new Promise((resolve) => setTimeout(resolve, 1000));
    await startBin();
    const run = await waitFor('survivor', ['done', 'failed', 'terminated'], 60_000);
    const text = (await logsOf('survivor', latest(run).id)).map((e) => e.text).join('');

    expect(run.status).toBe('done');
    expect(text).toBe('before\nafter\n');
  }, 120_000);
});
