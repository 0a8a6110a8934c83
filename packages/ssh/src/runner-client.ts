import { runnerScript, runnerScriptSha256 } from './runner-script.js';
import { ensureRemoteDir, runChecked, writeRemoteFileAtomic } from './remote-files.js';
import { SshHostError } from './ssh-host-error.js';
import type { SshConnection } from './ssh-connection.js';

/** The agent's directory under the login user's home; releasing a host removes it. */
export const agentDirName = '.dstack-agent';

/** A runner invocation; every argument must be a plain token (ids, numbers, words). */
export function runnerCommand(args: readonly (string | number)[]): string {
  for (const arg of args) {
    if (!/^[A-Za-z0-9_.-]+$/.test(String(arg))) {
      throw new Error(`not a plain runner argument: ${String(arg)}`);
    }
  }

  return `python3 "$HOME/${agentDirName}/runner.py" ${args.join(' ')}`;
}

const replyMarker = Buffer.from('@@dstack-runner@@');

/**
 * The runner's JSON reply and the bytes after its line. Whatever a login shell printed
 * before the marker (a banner, a chatty profile) is skipped.
 */
export function parseRunnerReply<T>(stdout: Buffer): { reply: T; rest: Buffer } | null {
  const start = stdout.indexOf(replyMarker);
  if (start < 0) {
    return null;
  }

  const from = start + replyMarker.length;
  const end = stdout.indexOf(0x0a, from);
  const line = stdout.subarray(from, end < 0 ? stdout.length : end).toString('utf8');
  const rest = end < 0 ? Buffer.alloc(0) : stdout.subarray(end + 1);
  try {
    return { reply: JSON.parse(line) as T, rest };
  } catch {
    return null;
  }
}

const homes = new WeakMap<SshConnection, Promise<string>>();
const verified = new WeakMap<SshConnection, Promise<void>>();

/** The login user's home directory (SFTP needs absolute paths). */
export function remoteHome(connection: SshConnection, timeoutMillis: number): Promise<string> {
  let home = homes.get(connection);
  if (home === undefined) {
    const command = 'printf "@@home@@%s\\n" "$HOME"';
    home = runChecked(connection, command, { timeoutMillis }).then((out) => {
      const path = /@@home@@(.*)\n/.exec(out.toString('utf8'))?.[1] ?? '';
      if (!path.startsWith('/')) {
        throw new SshHostError(connection.label, 'unsupported_host', 'the user has no home');
      }

      return path;
    });
    home.catch(() => homes.delete(connection));
    homes.set(connection, home);
  }

  return home;
}

/** Uploads the runner over SFTP, replacing an older one. */
export async function installRunner(
  connection: SshConnection,
  timeoutMillis: number,
): Promise<void> {
  const home = await remoteHome(connection, timeoutMillis);
  const sftp = await connection.sftp();
  await ensureRemoteDir(sftp, `${home}/${agentDirName}`, 0o700);
  await ensureRemoteDir(sftp, `${home}/${agentDirName}/jobs`, 0o700);
  await writeRemoteFileAtomic(sftp, `${home}/${agentDirName}/runner.py`, runnerScript, 0o700);
}

/** Writes the fleet's `env`, which the runner merges into every job's environment. */
export async function writeHostEnv(
  connection: SshConnection,
  env: Record<string, string>,
  timeoutMillis: number,
): Promise<void> {
  const home = await remoteHome(connection, timeoutMillis);
  const sftp = await connection.sftp();
  const path = `${home}/${agentDirName}/host-env.json`;
  await writeRemoteFileAtomic(sftp, path, JSON.stringify(env), 0o600);
}

/**
 * Puts a job's repo code where the runner's `submit` picks it up (`incoming/<id>.blob`);
 * a second submit of the same job discards it.
 */
export async function uploadRepoBlob(
  connection: SshConnection,
  jobSubmissionId: string,
  blob: Uint8Array,
  timeoutMillis: number,
): Promise<void> {
  const home = await remoteHome(connection, timeoutMillis);
  const sftp = await connection.sftp();
  const dir = `${home}/${agentDirName}/incoming`;
  await ensureRemoteDir(sftp, dir, 0o700);
  await writeRemoteFileAtomic(sftp, `${dir}/${jobSubmissionId}.blob`, Buffer.from(blob), 0o600);
}

/** Makes sure this server's runner is on the host, checked once per connection. */
export function ensureRunner(connection: SshConnection, timeoutMillis: number): Promise<void> {
  let check = verified.get(connection);
  if (check === undefined) {
    check = (async () => {
      const result = await connection.exec(runnerCommand(['health']), { timeoutMillis });
      const health = result.code === 0 ? parseRunnerReply<{ sha256: string }>(result.stdout) : null;
      const digest = health?.reply.sha256;
      if (digest !== runnerScriptSha256) {
        await installRunner(connection, timeoutMillis);
      }
    })();
    check.catch(() => verified.delete(connection));
    verified.set(connection, check);
  }

  return check;
}

/** Runs the runner and returns its stdout; a failure names the host. */
export function callRunner(
  connection: SshConnection,
  args: readonly (string | number)[],
  options: { stdin?: string; timeoutMillis: number },
): Promise<Buffer> {
  return runChecked(connection, runnerCommand(args), options);
}
