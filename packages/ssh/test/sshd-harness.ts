import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A key pair in OpenSSH format. */
export interface KeyPair {
  privateKey: string;
  publicKey: string;
}

export function generateKeyPair(comment: string): KeyPair {
  // ssh-keygen rather than ssh2's generator: about one ed25519 key in 256 from the latter
  // loses a leading zero byte of its public half, and ssh2 then refuses to parse the key.
  const dir = mkdtempSync(join(tmpdir(), 'dstack-key-'));
  const path = join(dir, 'id_ed25519');

  try {
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', path]);
    return {
      privateKey: readFileSync(path, 'utf8'),
      publicKey: readFileSync(`${path}.pub`, 'utf8').trim(),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A real sshd on a loopback address, with its own host key, config and home directory. */
export interface SshdHost {
  address: string;
  port: number;
  dir: string;
  /** HOME of the sessions it starts (sshd's `SetEnv`), where `~/.ssh/authorized_keys` is. */
  home: string;
  authorizedKeysPath: string;
  /** Ends the jobs the agent left under `home`, then sshd, then removes the directory. */
  stop(): Promise<void>;
  /** Restarts sshd on the same address and port with a new host key (a reinstalled host). */
  replaceHostKey(): Promise<void>;
  /** Kills this sshd's per-connection processes: every open connection drops at once. */
  dropConnections(): Promise<number>;
  /** How many connections this sshd serves now (its per-connection processes). */
  connectionCount(): Promise<number>;
}

export interface StartSshdOptions {
  /** A loopback address: 127.0.0.2, 127.0.0.3, ... */
  address: string;
  authorizedKeys: string[];
  /** Sessions get a PATH without python3, as on a host that lacks it. */
  withoutPython?: boolean;
  /**
   * The given keys live outside the home (sshd reads both files), so the home starts
   * without `~/.ssh`.
   */
  keysOutsideHome?: boolean;
}

export async function freePort(address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, address, () => {
      const info = server.address();
      const port = typeof info === 'object' && info !== null ? info.port : 0;
      server.close(() => resolve(port));
    });
  });
}

async function waitForPort(address: string, port: number, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      throw new Error(`sshd exited with ${child.exitCode}`);
    }

    const open = await new Promise<boolean>((resolve) => {
      const socket = createConnection({ host: address, port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) {
      return;
    }

    await new Promise((resolve) => setTimeout(resolve, 50));
  }

  throw new Error(`sshd on ${address}:${port} did not start`);
}

async function pathWithoutPython(dir: string): Promise<string> {
  const bin = join(dir, 'bin');
  await mkdir(bin);
  for (const source of ['/usr/local/bin', '/usr/bin', '/usr/sbin', '/bin', '/sbin']) {
    if (!existsSync(source)) {
      continue;
    }

    for (const name of await readdir(source)) {
      if (!name.startsWith('python') && !existsSync(join(bin, name))) {
        await symlink(join(source, name), join(bin, name));
      }
    }
  }

  return bin;
}

/** The ids of the processes whose parent is `parent`, read from /proc. */
async function childrenOf(parent: number): Promise<number[]> {
  const children: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) {
      continue;
    }

    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[1]) === parent) {
      children.push(Number(entry));
    }
  }

  return children;
}

function killGroup(pid: unknown, signal: NodeJS.Signals): void {
  if (typeof pid !== 'number' || pid <= 1) {
    return;
  }

  try {
    process.kill(-pid, signal);
  } catch {
    // Already gone.
  }
}

async function killAgentJobs(home: string): Promise<void> {
  const jobs = join(home, '.dstack-agent', 'jobs');
  if (!existsSync(jobs)) {
    return;
  }

  for (const name of await readdir(jobs)) {
    const state = await readFile(join(jobs, name, 'state.json'), 'utf8').catch(() => null);
    if (state === null) {
      continue;
    }

    const parsed = JSON.parse(state) as { pgid?: number; supervisor_pid?: number };
    killGroup(parsed.pgid, 'SIGKILL');
    killGroup(parsed.supervisor_pid, 'SIGKILL');
  }
}

/** Starts sshd as root on `address`, on a free high port; only public-key logins. */
export async function startSshd(options: StartSshdOptions): Promise<SshdHost> {
  if (!options.address.startsWith('127.')) {
    throw new Error('test sshd listens on loopback only');
  }

  if (!existsSync('/usr/sbin/sshd')) {
    throw new Error('the SSH tests need sshd: apt-get install -y openssh-server');
  }

  await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  const dir = await mkdtemp(join(tmpdir(), 'dstack-sshd-'));
  const home = join(dir, 'home');
  const authorizedKeysPath = join(home, '.ssh', 'authorized_keys');
  const outsidePath = join(dir, 'user_keys');
  const keys = options.authorizedKeys.map((key) => `${key.trim()}\n`).join('');
  if (options.keysOutsideHome) {
    await mkdir(home, { mode: 0o700 });
    await writeFile(outsidePath, keys, { mode: 0o600 });
  } else {
    await mkdir(join(home, '.ssh'), { recursive: true, mode: 0o700 });
    await writeFile(authorizedKeysPath, keys, { mode: 0o600 });
  }
  const hostKey = join(dir, 'host_ed25519');
  const newHostKey = async (): Promise<void> => {
    await rm(hostKey, { force: true });
    await rm(`${hostKey}.pub`, { force: true });
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey]);
  };
  await newHostKey();
  const env = [`HOME=${home}`];
  if (options.withoutPython) {
    env.push(`PATH=${await pathWithoutPython(dir)}`);
  }

  const port = await freePort(options.address);
  const config = join(dir, 'sshd_config');
  await writeFile(
    config,
    [
      `ListenAddress ${options.address}:${port}`,
      `HostKey ${hostKey}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${outsidePath} ${authorizedKeysPath}`,
      'PermitRootLogin prohibit-password',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      'AllowTcpForwarding yes',
      'Subsystem sftp internal-sftp',
      `SetEnv ${env.join(' ')}`,
      'MaxStartups 50',
      'LogLevel VERBOSE',
      '',
    ].join('\n'),
  );
  await chmod(config, 0o600);
  const log: string[] = [];
  const spawnSshd = async (): Promise<ChildProcess> => {
    const started = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', config], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    started.stderr?.on('data', (chunk: Buffer) => log.push(chunk.toString('utf8')));
    try {
      await waitForPort(options.address, port, started);
    } catch (error) {
      started.kill('SIGKILL');
      throw new Error(`${(error as Error).message}: ${log.join('')}`);
    }

    return started;
  };
  const stopSshd = async (running: ChildProcess): Promise<void> => {
    if (running.exitCode === null && running.signalCode === null) {
      const exited = new Promise((resolve) => running.once('exit', resolve));
      running.kill('SIGTERM');
      await exited;
    }
  };
  let child: ChildProcess;
  try {
    child = await spawnSshd();
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }

  return {
    address: options.address,
    port,
    dir,
    home,
    authorizedKeysPath,
    async stop() {
      await killAgentJobs(home);
      await stopSshd(child);
      await rm(dir, { recursive: true, force: true });
    },
    async connectionCount() {
      return child.pid === undefined ? 0 : (await childrenOf(child.pid)).length;
    },
    async dropConnections() {
      const sessions = child.pid === undefined ? [] : await childrenOf(child.pid);
      for (const pid of sessions) {
        process.kill(pid, 'SIGKILL');
      }

      return sessions.length;
    },
    async replaceHostKey() {
      await stopSshd(child);
      await newHostKey();
      child = await spawnSshd();
    },
  };
}
