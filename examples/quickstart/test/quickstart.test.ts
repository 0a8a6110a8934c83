import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { runQuickstart } from '../src/quickstart.js';

const fixtures = fileURLToPath(new URL('../../../../shared/fixtures/configs/', import.meta.url));
const dirs: string[] = [];

async function serverDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'quickstart-test-'));
  dirs.push(dir);
  return dir;
}

afterEach(async () => {
  for (const dir of dirs.splice(0)) {
    await rm(dir, { recursive: true, force: true });
  }
});

async function quickstart(configPath: string, dir: string) {
  const out: string[] = [];
  const info: string[] = [];
  const result = await runQuickstart({
    configPath,
    serverDir: dir,
    out: (text) => out.push(text),
    info: (text) => info.push(text),
  });
  return { ...result, out: out.join(''), info };
}

describe('quickstart', () => {
  it('runs task-hello on this machine and prints its logs as they come', async () => {
    const dir = await serverDir();

    const result = await quickstart(join(fixtures, 'task-hello.dstack.yml'), dir);

    expect(result.exitCode).toBe(0);
    expect(result.run?.status).toBe('done');
    expect(result.out).toContain('hello from node 0 of 1\n');
    expect(result.out).toContain('line 1\nline 2\nline 3\n');
    expect(result.out).toContain('to stderr\n');
    expect(result.info.at(-1)).toBe('run hello done (done_by_runner), exit status 0');
    expect(await readdir(join(dir, 'projects', 'main', 'logs', 'hello'))).toHaveLength(1);
  }, 90_000);

  it("exits with the job's own exit status when it fails", async () => {
    const dir = await serverDir();
    const config = join(dir, 'fails.dstack.yml');
    await writeFile(config, [
      'type: task',
      'name: fails',
      'commands:',
      '  - echo "about to fail"',
      '  - exit 7',
      '',
    ].join('\n'));

    const result = await quickstart(config, dir);

    expect(result.out).toBe('about to fail\n');
    expect(result.exitCode).toBe(7);
    expect(result.run?.status).toBe('failed');
  }, 90_000);
});
