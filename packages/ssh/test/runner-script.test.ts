import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runnerScript } from '../src/runner-script.js';

// How far a burst's last stamp may run past the job's end. Stamping one millisecond per line
// ran 40 to 50 s ahead on these jobs; the bound leaves room for a machine busy with other
// work, where the reader lags behind the pipe.
const maxLeadMillis = 5000;

interface RunnerEvent {
  t: number;
  s: 'o' | 'e' | 'r';
  m: string;
}

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ssh-runner-'));
  await writeFile(join(dir, 'runner.py'), runnerScript, { mode: 0o700 });
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function submit(id: string, spec: unknown): Promise<void> {
  const child = spawn('python3', [join(dir, 'runner.py'), 'submit', id], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stdin.end(JSON.stringify(spec));
  await new Promise((resolve) => child.once('exit', resolve));
  expect(output).toContain('{"submitted": true}');
}

/** Runs commands through the runner on this machine, as it runs them on a fleet host. */
async function runJob(id: string, commands: string[]): Promise<{
  events: RunnerEvent[];
  finishedAt: number;
}> {
  await submit(id, { commands, env: {} });
  const jobDir = join(dir, 'jobs', id);
  const deadline = Date.now() + 60_000;

  while (Date.now() < deadline) {
    const state = JSON.parse(await readFile(join(jobDir, 'state.json'), 'utf8')) as {
      status: string;
      finished_at: number;
    };

    if (state.status !== 'running') {
      expect(state.status).toBe('done');
      const text = await readFile(join(jobDir, 'events'), 'utf8');
      const events = text.trimEnd().split('\n').map((line) => JSON.parse(line) as RunnerEvent);
      return { events, finishedAt: state.finished_at };
    }

    await new Promise((resolve) => setTimeout(resolve, 100));
  }

  throw new Error('the job did not finish');
}

function textOf(events: RunnerEvent[], source: RunnerEvent['s']): string {
  return events.filter((event) => event.s === source).map((event) => event.m).join('');
}

function expectIncreasing(events: RunnerEvent[]): void {
  for (let index = 1; index < events.length; index += 1) {
    expect(events[index].t).toBeGreaterThan(events[index - 1].t);
  }
}

describe('the SSH host runner', () => {
  it('keeps a burst of 50,000 lines whole and its stamps close to the clock', async () => {
    const { events, finishedAt } = await runJob('burst', [
      'python3 -c "[print(\'row\', i) for i in range(50000)]"',
    ]);

    expect(textOf(events, 'o')).toBe(
      Array.from({ length: 50000 }, (_, i) => `row ${i}\n`).join(''),
    );
    expect(Math.max(...events.map((event) => event.m.length))).toBeLessThanOrEqual(8192);
    expectIncreasing(events);
    expect(events.at(-1)!.t - finishedAt).toBeLessThan(maxLeadMillis);
  }, 90_000);

  it('keeps both streams whole and close to the clock when they alternate quickly', async () => {
    const { events, finishedAt } = await runJob('alternate', [
      'python3 -c "import sys; [print(i, file=(sys.stderr if i % 2 else sys.stdout), ' +
        'flush=True) for i in range(40000)]"',
    ]);
    const numbers = (odd: number): string => Array.from({ length: 20000 }, (_, i) => 2 * i + odd)
      .map((value) => `${value}\n`)
      .join('');

    expect(textOf(events, 'o')).toBe(numbers(0));
    expect(textOf(events, 'e')).toBe(numbers(1));
    expectIncreasing(events);
    expect(events.at(-1)!.t - finishedAt).toBeLessThan(maxLeadMillis);
  }, 90_000);
});
