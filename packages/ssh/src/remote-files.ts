import type { SFTPWrapper } from 'ssh2';
import { SshHostError } from './ssh-host-error.js';
import type { SshConnection } from './ssh-connection.js';

// SFTP status code for a missing file.
const noSuchFile = 2;

type Done<T> = (error: Error | null | undefined, value: T) => void;

function sftpCall<T>(run: (done: Done<T>) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    run((error, value) => (error ? reject(error) : resolve(value)));
  });
}

function isMissing(error: unknown): boolean {
  return (error as { code?: unknown })?.code === noSuchFile;
}

/** The file's contents, or null when it does not exist. */
export async function readRemoteFile(sftp: SFTPWrapper, path: string): Promise<Buffer | null> {
  try {
    return await sftpCall<Buffer>((done) => sftp.readFile(path, done));
  } catch (error) {
    if (isMissing(error)) {
      return null;
    }

    throw error;
  }
}

/** The permission bits of a file, or null when it does not exist. */
export async function remoteMode(sftp: SFTPWrapper, path: string): Promise<number | null> {
  try {
    const stats = await sftpCall<{ mode: number }>((done) => sftp.stat(path, done));

    return stats.mode & 0o7777;
  } catch (error) {
    if (isMissing(error)) {
      return null;
    }

    throw error;
  }
}

/** Creates a directory with `mode` unless it exists; an existing one keeps its mode. */
export async function ensureRemoteDir(
  sftp: SFTPWrapper,
  path: string,
  mode: number,
): Promise<void> {
  if ((await remoteMode(sftp, path)) !== null) {
    return;
  }

  await sftpCall<void>((done) => sftp.mkdir(path, { mode }, (error) => done(error, undefined)));
}

/**
 * Replaces a file in one step: written beside it, then renamed over it, so a reader (sshd
 * reading `authorized_keys`) never sees it half written.
 */
export async function writeRemoteFileAtomic(
  sftp: SFTPWrapper,
  path: string,
  data: string | Buffer,
  mode: number,
): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  await sftpCall<void>((done) => {
    sftp.writeFile(tmp, data, { mode }, (error) => done(error, undefined));
  });
  await sftpCall<void>((done) => sftp.chmod(tmp, mode, (error) => done(error, undefined)));
  try {
    await sftpCall<void>((done) => {
      sftp.ext_openssh_rename(tmp, path, (error) => done(error, undefined));
    });
  } catch {
    // Servers without OpenSSH's posix-rename: plain SFTP rename refuses to overwrite.
    await sftpCall<void>((done) => sftp.unlink(path, (error) => done(error, undefined)))
      .catch(() => undefined);
    await sftpCall<void>((done) => sftp.rename(tmp, path, (error) => done(error, undefined)));
  }
}

/** Removes a file, or an empty directory; what is missing or not empty is left alone. */
export async function removeRemoteEntry(
  sftp: SFTPWrapper,
  path: string,
  kind: 'file' | 'empty-dir',
): Promise<void> {
  await sftpCall<void>((done) => {
    const callback = (error: Error | null | undefined): void => done(error, undefined);
    if (kind === 'file') {
      sftp.unlink(path, callback);
    } else {
      sftp.rmdir(path, callback);
    }
  }).catch(() => undefined);
}

/** Runs a command that must succeed; its stderr goes into the error. */
export async function runChecked(
  connection: SshConnection,
  command: string,
  options: { stdin?: string | Buffer; timeoutMillis: number },
): Promise<Buffer> {
  const result = await connection.exec(command, options);
  if (result.code !== 0) {
    const stderr = result.stderr.toString('utf8').trim().slice(0, 500);
    const status = result.code === null ? `signal ${result.signal}` : `status ${result.code}`;
    throw new SshHostError(
      connection.label,
      'command_failed',
      `a command failed with ${status}${stderr === '' ? '' : `: ${stderr}`}`,
    );
  }

  return result.stdout;
}
