import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '@dstack/core';
import type { AgentJob } from '@dstack/core';
import { createBackendProvider } from './fixtures-replicas/fast-backend.js';
import { countBy, readFastEvents } from './fixtures-replicas/replica-cluster.js';

// The replica tests count `start` lines to prove every job started once; a replica killed
// between starting a job and writing its line must not make that count wrong.
let serverDir: string;
const stateDir = () => join(serverDir, 'fast-backend');

beforeEach(async () => {
  serverDir = await mkdtemp(join(tmpdir(), 'fast-fixture-'));
});

afterEach(async () => {
  await rm(serverDir, { recursive: true, force: true });
});

function jobOf(id: string): AgentJob {
  return {
    jobSubmissionId: id, projectName: 'main', runName: `run-${id}`, jobName: 'job',
    commands: ['echo fast'], shell: null, env: {}, workingDir: null, maxDurationSeconds: null,
  };
}

async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await new Promise((resolve) => child.once('exit', resolve));
  return child.pid!;
}

describe('the fast backend fixture', () => {
  it('records the start of a job whose starter died before writing it, once', async () => {
    const agent = createBackendProvider({ serverDir, logger: silentLogger }).agent({} as never);
    await agent.healthcheck();
    const pid = await deadPid();
    await mkdir(join(stateDir(), 'jobs'), { recursive: true });
    await writeFile(join(stateDir(), 'jobs', 'orphan.json'), JSON.stringify({
      startedAt: 1_700_000_000_000, startedBy: pid, runName: 'run-orphan',
      durationMillis: 500, lines: 3,
    }));
    await writeFile(join(stateDir(), 'events.jsonl'), '');

    await agent.submit(jobOf('orphan'));
    await agent.submit(jobOf('orphan'));
    await agent.submit(jobOf('fresh'));
    const events = await readFastEvents(stateDir());
    const starts = events.filter((event) => event.event === 'start');

    expect(countBy(events, 'submit')).toEqual(new Map([['orphan', 2], ['fresh', 1]]));
    expect(starts.map((event) => [event.id, event.pid, event.at === 1_700_000_000_000]))
      .toEqual([['orphan', pid, true], ['fresh', process.pid, false]]);
  });
});
