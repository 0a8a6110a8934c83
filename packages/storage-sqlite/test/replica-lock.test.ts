import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { acquireReplicaLock, ReplicaLockError } from '@dstack/storage-sqlite';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

let root: string;
let databasePath: string;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'dstack-replica-lock-'));
  databasePath = join(root, 'sqlite.db');
});

afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

function writeLock(pid: number, host = hostname()): void {
  const owner = { pid, hostname: host, startedAt: '2026-01-01T00:00:00.000Z' };
  writeFileSync(`${databasePath}.lock`, JSON.stringify(owner));
}

describe('replica lock', () => {
  it('writes a lock file with this pid and removes it on release', () => {
    const lock = acquireReplicaLock(databasePath);

    expect(lock.path).toBe(`${databasePath}.lock`);
    expect(JSON.parse(readFileSync(lock.path, 'utf8')).pid).toBe(process.pid);

    lock.release();
    expect(existsSync(lock.path)).toBe(false);
    acquireReplicaLock(databasePath).release();
  });

  it('refuses a second holder in the same process', () => {
    const lock = acquireReplicaLock(databasePath);

    expect(() => acquireReplicaLock(databasePath)).toThrow(ReplicaLockError);
    lock.release();
  });

  it('refuses while another live process holds it and names that process', async () => {
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], {
      stdio: 'ignore',
    });

    try {
      writeLock(child.pid as number);

      let thrown: unknown;
      try {
        acquireReplicaLock(databasePath);
      } catch (error) {
        thrown = error;
      }

      expect(thrown).toBeInstanceOf(ReplicaLockError);
      expect((thrown as ReplicaLockError).ownerPid).toBe(child.pid);
      expect((thrown as Error).message).toContain(`pid ${child.pid}`);
      expect((thrown as Error).message).toContain('one server process');
      expect(JSON.parse(readFileSync(`${databasePath}.lock`, 'utf8')).pid).toBe(child.pid);
    } finally {
      child.kill();
    }
  });

  it('takes over a lock left by a process that is gone', () => {
    const finished = spawnSync(process.execPath, ['-e', 'process.exit(0)']);
    writeLock(finished.pid as number);

    const lock = acquireReplicaLock(databasePath);

    expect(JSON.parse(readFileSync(lock.path, 'utf8')).pid).toBe(process.pid);
    lock.release();
  });

  it('takes over a lock carrying its own pid from an earlier start', () => {
    writeLock(process.pid);

    const lock = acquireReplicaLock(databasePath);

    expect(JSON.parse(readFileSync(lock.path, 'utf8')).startedAt).not.toBe(
      '2026-01-01T00:00:00.000Z',
    );
    lock.release();
  });

  it('refuses a lock held from another host, since it cannot tell whether that is alive', () => {
    writeLock(12345, 'some-other-host');

    expect(() => acquireReplicaLock(databasePath)).toThrow(/host some-other-host/);
  });

  it('does not remove a lock that another process took over meanwhile', () => {
    const lock = acquireReplicaLock(databasePath);
    writeLock(999_999);

    lock.release();

    expect(JSON.parse(readFileSync(`${databasePath}.lock`, 'utf8')).pid).toBe(999_999);
  });
});
