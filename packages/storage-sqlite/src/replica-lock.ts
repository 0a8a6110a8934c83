import { linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, resolve } from 'node:path';

/** A held replica lock; `release` removes the lock file if it is still this process's. */
export interface ReplicaLock {
  readonly path: string;
  release(): void;
}

/** Another live server process already owns this SQLite state. */
export class ReplicaLockError extends Error {
  override readonly name = 'ReplicaLockError';

  constructor(
    readonly lockPath: string,
    readonly ownerPid: number | undefined,
    detail: string,
  ) {
    super(
      `${detail}; a SQLite state allows one server process. Stop the other server, or ` +
        `use Postgres (DSTACK_DATABASE_URL) to run several replicas. Lock file: ${lockPath}`,
    );
  }
}

interface LockOwner {
  pid: number;
  hostname: string;
  startedAt: string;
}

const heldInThisProcess = new Set<string>();

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readOwner(lockPath: string): { text: string; owner: LockOwner | undefined } | undefined {
  let text: string;

  try {
    text = readFileSync(lockPath, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      return undefined;
    }

    throw error;
  }

  try {
    return { text, owner: JSON.parse(text) as LockOwner };
  } catch {
    return { text, owner: undefined };
  }
}

function tryCreate(lockPath: string, content: string): boolean {
  // Written aside first and hard-linked into place, so the lock never exists half written.
  const temporary = `${lockPath}.${process.pid}.${Date.now()}.tmp`;
  writeFileSync(temporary, content);

  try {
    linkSync(temporary, lockPath);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
      return false;
    }

    throw error;
  } finally {
    unlinkSync(temporary);
  }
}

/**
 * Takes the lock that keeps a second server process off one SQLite state: a file next to
 * the database naming the owner's pid. A lock left by a process that is gone is taken over;
 * a live owner makes this throw a ReplicaLockError that says who holds it.
 */
export function acquireReplicaLock(databasePath: string): ReplicaLock {
  const lockPath = `${resolve(databasePath)}.lock`;

  if (heldInThisProcess.has(lockPath)) {
    throw new ReplicaLockError(lockPath, process.pid, 'this process already opened the state');
  }

  mkdirSync(dirname(lockPath), { recursive: true });

  const content = JSON.stringify({
    pid: process.pid,
    hostname: hostname(),
    startedAt: new Date().toISOString(),
  } satisfies LockOwner);

  for (let attempt = 0; attempt < 5; attempt += 1) {
    if (tryCreate(lockPath, content)) {
      heldInThisProcess.add(lockPath);
      return {
        path: lockPath,
        release() {
          if (!heldInThisProcess.delete(lockPath)) {
            return;
          }

          if (readOwner(lockPath)?.text === content) {
            unlinkSync(lockPath);
          }
        },
      };
    }

    const existing = readOwner(lockPath);

    if (!existing) {
      continue;
    }

    const { owner } = existing;

    if (owner && owner.hostname !== hostname()) {
      throw new ReplicaLockError(
        lockPath,
        owner.pid,
        `a server on host ${owner.hostname} (pid ${owner.pid}) holds this state`,
      );
    }

    // Our own pid in the file is a lock from an earlier life of this container.
    if (owner && owner.pid !== process.pid && isAlive(owner.pid)) {
      throw new ReplicaLockError(
        lockPath,
        owner.pid,
        `another server process (pid ${owner.pid}, started ${owner.startedAt}) uses this state`,
      );
    }

    // The owner is gone: remove its lock unless someone else replaced it meanwhile.
    // TODO: two servers taking over one stale lock at the same instant can both win.
    if (readOwner(lockPath)?.text === existing.text) {
      try {
        unlinkSync(lockPath);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
          throw error;
        }
      }
    }
  }

  throw new ReplicaLockError(lockPath, undefined, 'could not take the lock file');
}
