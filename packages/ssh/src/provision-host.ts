import type { JobProvisioningData, Logger, ProvisionedHost, RemoteHost } from '@dstack/core';
import { addAuthorizedKey, keyIdentity, removeAuthorizedKey } from './authorized-keys.js';
import {
  cpuArch,
  hostProbeScript,
  hostResources,
  parseHostProbe,
  totalBlocks,
} from './host-probe.js';
import type { HostFacts } from './host-probe.js';
import {
  ensureRemoteDir,
  readRemoteFile,
  remoteMode,
  removeRemoteEntry,
  runChecked,
  writeRemoteFileAtomic,
} from './remote-files.js';
import {
  agentDirName,
  installRunner,
  remoteHome,
  runnerCommand,
  writeHostEnv,
} from './runner-client.js';
import { endpointLabel, openSshConnection } from './ssh-connection.js';
import type { SshConnection, SshEndpoint } from './ssh-connection.js';
import { classifySshError, SshHostError } from './ssh-host-error.js';

/** What a remote instance's `backend_data` holds (public facts only: it goes on the wire). */
export interface RemoteBackendData {
  /** The host key fingerprint seen at provisioning, which later connections must match. */
  host_key: string;
}

/** The host key a remote instance was provisioned with, or null for older data. */
export function provisionedHostKey(backendData: string | null): string | null {
  try {
    const parsed = JSON.parse(backendData ?? 'null') as Partial<RemoteBackendData> | null;

    return typeof parsed?.host_key === 'string' ? parsed.host_key : null;
  } catch {
    return null;
  }
}

/** The oldest python3 the runner supports. */
const minPython: [number, number] = [3, 6];

export interface ProvisionContext {
  logger: Logger;
  connectTimeoutMillis: number;
  commandTimeoutMillis: number;
}

/** The host as the server logs in to it first (the user's key). */
export function userEndpoint(host: RemoteHost): SshEndpoint {
  return { hostname: host.hostname, port: host.port, user: host.user, privateKey: host.privateKey };
}

/** The host as the agent logs in to it later (the project key). */
export function projectEndpoint(host: RemoteHost): SshEndpoint {
  return { ...userEndpoint(host), privateKey: host.projectPrivateKey };
}

export function proxyEndpoint(host: RemoteHost): SshEndpoint | null {
  const jump = host.proxyJump;
  if (jump === null) {
    return null;
  }

  return { hostname: jump.hostname, port: jump.port, user: jump.user, privateKey: jump.privateKey };
}

/** Runs `work` within `timeoutMillis`, closing what it opened when time runs out. */
async function withDeadline<T>(
  label: string,
  timeoutMillis: number,
  work: (remainingMillis: () => number, track: (opened: SshConnection) => void) => Promise<T>,
): Promise<T> {
  const deadline = Date.now() + timeoutMillis;
  const opened: SshConnection[] = [];
  let over = false;
  // A connection that opens after the deadline is closed at once.
  const track = (connection: SshConnection): void => {
    opened.push(connection);
    if (over) {
      connection.close();
    }
  };
  const remaining = (): number => {
    const left = deadline - Date.now();
    if (left <= 0) {
      throw new SshHostError(label, 'timeout', `did not finish within ${timeoutMillis} ms`);
    }

    return left;
  };
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new SshHostError(label, 'timeout', `did not finish within ${timeoutMillis} ms`));
    }, timeoutMillis);
  });
  try {
    return await Promise.race([work(remaining, track), expired]);
  } catch (error) {
    over = true;
    for (const connection of opened) {
      connection.close();
    }

    // SFTP and socket errors come without the host: name it, as every failure should.
    throw error instanceof SshHostError ? error : classifySshError(label, error);
  } finally {
    clearTimeout(timer);
  }
}

function checkFacts(label: string, host: RemoteHost, facts: HostFacts): 'x86' | 'arm' {
  const arch = cpuArch(facts.arch);
  if (arch === null) {
    throw new SshHostError(
      label,
      'unsupported_host',
      `unsupported architecture ${facts.arch || '(unknown)'}: only 64-bit x86 and arm hosts`,
    );
  }

  if (facts.pythonVersion === null) {
    throw new SshHostError(
      label,
      'missing_requirement',
      'python3 is not installed (the agent needs python3 3.6 or newer)',
    );
  }

  const [major, minor] = facts.pythonVersion.split('.').map(Number);
  if (major < minPython[0] || (major === minPython[0] && minor < minPython[1])) {
    throw new SshHostError(
      label,
      'missing_requirement',
      `python3 ${facts.pythonVersion} is too old (the agent needs 3.6 or newer)`,
    );
  }

  for (const [name, value] of [
    ['CPU count', facts.cpus],
    ['memory size', facts.memoryMib],
    ['disk size', facts.diskMib],
  ] as const) {
    if (!Number.isFinite(value) || value <= 0) {
      throw new SshHostError(label, 'unsupported_host', `cannot read the ${name} of the host`);
    }
  }

  const internalIp = host.internalIp;
  if (internalIp !== null && facts.addresses.length > 0 && !facts.addresses.includes(internalIp)) {
    throw new SshHostError(
      label,
      'bad_network',
      `internal_ip ${internalIp} is not an address of the host (${facts.addresses.join(', ')})`,
    );
  }

  return arch;
}

/** Adds or removes the project key in `~/.ssh/authorized_keys`, created 700/600 if missing. */
async function editAuthorizedKeys(
  connection: SshConnection,
  home: string,
  edit: (text: string | null) => string | null,
): Promise<HostChanges & { changed: boolean; text: string | null }> {
  const sftp = await connection.sftp();
  const path = `${home}/.ssh/authorized_keys`;
  const current = await readRemoteFile(sftp, path);
  const text = current === null ? null : current.toString('utf8');
  const next = edit(text);
  const unchanged = { changed: false, createdSshDir: false, createdAuthorizedKeys: false, text };
  if (next === null || next === text) {
    return unchanged;
  }

  const createdSshDir = (await remoteMode(sftp, `${home}/.ssh`)) === null;
  await ensureRemoteDir(sftp, `${home}/.ssh`, 0o700);
  const mode = (await remoteMode(sftp, path)) ?? 0o600;
  await writeRemoteFileAtomic(sftp, path, next, mode);

  return { changed: true, createdSshDir, createdAuthorizedKeys: text === null, text: next };
}

/** What provisioning created outside the agent's directory, so releasing can undo it. */
interface HostChanges {
  createdSshDir: boolean;
  createdAuthorizedKeys: boolean;
}

const hostChangesFile = 'host-changes.json';

/**
 * Prepares a host: logs in with the user's key, checks and measures it, installs the project
 * key and the runner, and checks that the project key now logs in. Returns that connection
 * for the agent to reuse.
 */
export async function provisionHost(
  host: RemoteHost,
  timeoutMillis: number,
  context: ProvisionContext,
): Promise<{ provisioned: ProvisionedHost; connection: SshConnection }> {
  const proxy = proxyEndpoint(host);
  const label = endpointLabel(userEndpoint(host), proxy);
  const log = context.logger.child({ host: label });

  if (keyIdentity(host.projectPublicKey) === null || host.projectPrivateKey === '') {
    throw new SshHostError(label, 'bad_key', 'the project has no usable SSH key pair');
  }

  return withDeadline(label, timeoutMillis, async (remaining, track) => {
    const connectTimeoutMillis = (): number => Math.min(context.connectTimeoutMillis, remaining());
    const commandTimeout = (): number => Math.min(context.commandTimeoutMillis, remaining());
    const first = await openSshConnection(userEndpoint(host), {
      proxyJump: proxy,
      connectTimeoutMillis: connectTimeoutMillis(),
    });
    track(first);

    const probe = await runChecked(first, 'sh -s', {
      stdin: hostProbeScript,
      timeoutMillis: commandTimeout(),
    });
    const facts = parseHostProbe(probe.toString('utf8'));
    const arch = checkFacts(label, host, facts);
    const blocks = totalBlocks(host.blocks, facts.cpus, facts.gpus.length);
    if (blocks === null) {
      throw new SshHostError(
        label,
        'bad_blocks',
        `cannot split ${facts.cpus} CPUs and ${facts.gpus.length} GPUs into ${host.blocks} blocks`,
      );
    }

    const home = await remoteHome(first, commandTimeout());
    const keys = await editAuthorizedKeys(
      first,
      home,
      (text) => addAuthorizedKey(text, host.projectPublicKey).text,
    );
    const keyAdded = keys.changed;
    await installRunner(first, commandTimeout());
    await writeHostEnv(first, host.env, commandTimeout());
    if (keyAdded) {
      const changes: HostChanges = {
        createdSshDir: keys.createdSshDir,
        createdAuthorizedKeys: keys.createdAuthorizedKeys,
      };
      const path = `${home}/${agentDirName}/${hostChangesFile}`;
      await writeRemoteFileAtomic(await first.sftp(), path, JSON.stringify(changes), 0o600);
    }

    first.close();

    // The agent logs in with the project key from now on: prove that it works.
    const agentConnection = await openSshConnection(projectEndpoint(host), {
      proxyJump: proxy,
      connectTimeoutMillis: connectTimeoutMillis(),
      expectedHostKey: first.hostKey,
    }).catch((error: unknown) => {
      if (!(error instanceof SshHostError) || error.reason !== 'auth_failed') {
        throw error;
      }

      throw new SshHostError(
        label,
        'auth_failed',
        'the project key does not log in (does sshd read ~/.ssh/authorized_keys?)',
      );
    });
    track(agentConnection);

    await runChecked(agentConnection, runnerCommand(['health']), {
      timeoutMillis: commandTimeout(),
    });

    const gpu = facts.gpus[0];
    const provisioningData: JobProvisioningData = {
      backend: 'remote',
      base_backend: null,
      instance_type: { name: 'ssh', resources: hostResources(facts, arch) },
      instance_id: `${host.user}@${host.hostname}:${host.port}`,
      hostname: host.hostname,
      internal_ip: host.internalIp ?? (isIpAddress(host.hostname) ? host.hostname : null),
      public_ip_enabled: true,
      instance_network: null,
      region: 'remote',
      availability_zone: null,
      reservation: null,
      price: 0,
      username: host.user,
      ssh_port: host.port,
      dockerized: false,
      ssh_proxy: host.proxyJump && {
        hostname: host.proxyJump.hostname,
        username: host.proxyJump.user,
        port: host.proxyJump.port,
      },
      backend_data: JSON.stringify({ host_key: first.hostKey } satisfies RemoteBackendData),
      gpu_driver: gpu?.driverVersion ? { vendor: 'nvidia', version: gpu.driverVersion } : null,
    };
    log.info(
      { cpus: facts.cpus, memoryMib: facts.memoryMib, gpus: facts.gpus.length, keyAdded },
      'ssh host provisioned',
    );

    return { provisioned: { provisioningData, totalBlocks: blocks }, connection: agentConnection };
  });
}

function isIpAddress(hostname: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(hostname) || hostname.includes(':');
}

// TODO: hosts shared by fleets of several projects share ~/.dstack-agent, so releasing one
// ends the others' jobs; matters once one host is put in more than one fleet.
/**
 * Leaves the host as it was before provisioning: ends the agent's jobs, removes the agent's
 * files and the tagged project key line.
 */
export async function releaseHost(
  host: RemoteHost,
  timeoutMillis: number,
  context: ProvisionContext,
): Promise<void> {
  const proxy = proxyEndpoint(host);
  const label = endpointLabel(userEndpoint(host), proxy);

  await withDeadline(label, timeoutMillis, async (remaining, track) => {
    const commandTimeout = (): number => Math.min(context.commandTimeoutMillis, remaining());
    const open = (endpoint: SshEndpoint): Promise<SshConnection> =>
      openSshConnection(endpoint, {
        proxyJump: proxy,
        connectTimeoutMillis: Math.min(context.connectTimeoutMillis, remaining()),
      });
    // The project key still logs in when the user has since removed their own key.
    const connection = await open(userEndpoint(host)).catch((error: unknown) => {
      if (error instanceof SshHostError && error.reason === 'auth_failed') {
        return open(projectEndpoint(host));
      }

      throw error;
    });
    track(connection);

    const home = await remoteHome(connection, commandTimeout());
    const sftp = await connection.sftp();
    const recorded = await readRemoteFile(sftp, `${home}/${agentDirName}/${hostChangesFile}`);
    const changes = recorded === null
      ? null
      : (JSON.parse(recorded.toString('utf8')) as HostChanges);

    const runner = `"$HOME/${agentDirName}/runner.py"`;
    const stopAll = `if [ -f ${runner} ]; then ${runnerCommand(['stop-all'])} >/dev/null; fi`;
    await runChecked(connection, `${stopAll}; rm -rf -- "$HOME/${agentDirName}"`, {
      timeoutMillis: commandTimeout(),
    });

    const keys = await editAuthorizedKeys(connection, home, (text) =>
      text === null ? null : removeAuthorizedKey(text, host.projectPublicKey),
    );
    if (changes?.createdAuthorizedKeys && keys.text !== null && keys.text.trim() === '') {
      await removeRemoteEntry(sftp, `${home}/.ssh/authorized_keys`, 'file');
    }

    if (changes?.createdSshDir) {
      await removeRemoteEntry(sftp, `${home}/.ssh`, 'empty-dir');
    }

    connection.close();
    context.logger.child({ host: label }).info('ssh host released');
  });
}
