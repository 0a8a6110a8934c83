import { createHash } from 'node:crypto';
import { Client } from 'ssh2';
import type { ClientChannel, SFTPWrapper } from 'ssh2';
import type { Duplex } from 'node:stream';
import { SshHostError, classifySshError } from './ssh-host-error.js';

/** Where to log in and with which key. */
export interface SshEndpoint {
  hostname: string;
  port: number;
  user: string;
  /** OpenSSH or PEM private key, unencrypted. */
  privateKey: string;
}

export interface SshConnectOptions {
  /** A bastion reached first; the target is then reached through a `direct-tcpip` channel. */
  proxyJump: SshEndpoint | null;
  /** Bound on TCP connect plus handshake plus authentication, per hop. */
  connectTimeoutMillis: number;
  /** The target's host key fingerprint seen at provisioning; another key is refused. */
  expectedHostKey?: string | null;
}

export interface ExecResult {
  code: number | null;
  signal: string | null;
  stdout: Buffer;
  stderr: Buffer;
}

export interface ExecOptions {
  stdin?: string | Buffer;
  timeoutMillis: number;
}

/** One authenticated SSH connection to a host. */
export interface SshConnection {
  /** `user@host:port`, with the proxy when there is one. */
  readonly label: string;
  readonly closed: boolean;
  /** The target's host key fingerprint, `SHA256:<base64>` as OpenSSH prints it. */
  readonly hostKey: string;
  /** Runs a command and collects its output; rejects when it runs longer than the timeout. */
  exec(command: string, options: ExecOptions): Promise<ExecResult>;
  /** The connection's SFTP session, opened once. */
  sftp(): Promise<SFTPWrapper>;
  close(): void;
}

// sshd's MaxSessions defaults to 10 channels per connection; stay below it.
const maxChannels = 8;

/** The OpenSSH-style fingerprint of a host key blob. */
export function hostKeyFingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/** `user@host:port`, and the proxy it goes through. */
export function endpointLabel(target: SshEndpoint, proxy: SshEndpoint | null): string {
  const label = `${target.user}@${target.hostname}:${target.port}`;
  if (proxy === null) {
    return label;
  }

  return `${label} (via ${proxy.user}@${proxy.hostname}:${proxy.port})`;
}

/**
 * Opens a connection with public-key authentication only, so nothing ever waits for a
 * password or a keyboard-interactive prompt; every hop is bounded by the connect timeout.
 */
export async function openSshConnection(
  target: SshEndpoint,
  options: SshConnectOptions,
): Promise<SshConnection> {
  const label = endpointLabel(target, options.proxyJump);
  const timeoutMillis = options.connectTimeoutMillis;
  let proxy: Client | null = null;
  let sock: Duplex | undefined;
  if (options.proxyJump !== null) {
    const jump = options.proxyJump;
    const jumpLabel = `proxy ${jump.user}@${jump.hostname}:${jump.port}`;
    // TODO: pin the bastion's host key too; matters where the bastion can be impersonated.
    proxy = (await connectClient(jump, jumpLabel, undefined, timeoutMillis, null)).client;
    try {
      sock = await forwardOut(proxy, target, label, timeoutMillis);
    } catch (error) {
      proxy.end();
      throw error;
    }
  }

  let connected: { client: Client; hostKey: string };
  try {
    connected = await connectClient(target, label, sock, timeoutMillis, options.expectedHostKey);
  } catch (error) {
    proxy?.end();
    throw error;
  }

  connected.client.on('close', () => proxy?.end());

  return wrapClient(connected.client, label, connected.hostKey);
}

function connectClient(
  endpoint: SshEndpoint,
  label: string,
  sock: Duplex | undefined,
  timeoutMillis: number,
  expectedHostKey: string | null | undefined,
): Promise<{ client: Client; hostKey: string }> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    let settled = false;
    let hostKey = '';
    let keyMismatch = false;
    const fail = (error: unknown): void => {
      if (settled) {
        return;
      }

      settled = true;
      clearTimeout(timer);
      client.end();
      if (keyMismatch) {
        const detail = `the host key changed since provisioning (${hostKey}, ` +
          `expected ${expectedHostKey}): refusing to connect`;
        reject(new SshHostError(label, 'host_key_changed', detail));

        return;
      }

      reject(classifySshError(label, error, endpoint.port));
    };
    const timer = setTimeout(() => {
      fail(new SshHostError(label, 'timeout', `no SSH session within ${timeoutMillis} ms`));
    }, timeoutMillis);
    client.once('ready', () => {
      settled = true;
      clearTimeout(timer);
      resolve({ client, hostKey });
    });
    client.on('error', fail);
    client.once('close', () => {
      fail(new SshHostError(label, 'ssh_error', 'the connection closed during the handshake'));
    });
    try {
      client.connect({
        host: endpoint.hostname,
        port: endpoint.port,
        username: endpoint.user,
        privateKey: endpoint.privateKey,
        sock,
        readyTimeout: timeoutMillis,
        // Trust on first use: provisioning records the key, later connections must match it.
        hostVerifier: (key: Buffer) => {
          hostKey = hostKeyFingerprint(key);
          keyMismatch = Boolean(expectedHostKey) && hostKey !== expectedHostKey;

          return !keyMismatch;
        },
        authHandler: ['publickey'],
        tryKeyboard: false,
        keepaliveInterval: 15_000,
        keepaliveCountMax: 3,
      });
    } catch (error) {
      fail(error);
    }
  });
}

function forwardOut(
  proxy: Client,
  target: SshEndpoint,
  label: string,
  timeoutMillis: number,
): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new SshHostError(label, 'timeout', 'the proxy did not open a channel in time'));
    }, timeoutMillis);
    proxy.forwardOut('127.0.0.1', 0, target.hostname, target.port, (error, channel) => {
      clearTimeout(timer);
      if (error) {
        reject(classifySshError(label, error, target.port));

        return;
      }

      resolve(channel);
    });
  });
}

function wrapClient(client: Client, label: string, hostKey: string): SshConnection {
  let closed = false;
  let sftpSession: Promise<SFTPWrapper> | null = null;
  let running = 0;
  const waiting: Array<() => void> = [];
  client.on('close', () => {
    closed = true;
  });
  client.on('error', () => {
    closed = true;
  });

  const acquire = async (): Promise<void> => {
    while (running >= maxChannels) {
      await new Promise<void>((resolve) => waiting.push(resolve));
    }

    running += 1;
  };
  const release = (): void => {
    running -= 1;
    waiting.shift()?.();
  };

  const exec = async (command: string, options: ExecOptions): Promise<ExecResult> => {
    if (closed) {
      throw new SshHostError(label, 'ssh_error', 'the connection is closed');
    }

    await acquire();
    try {
      return await execOnce(client, label, command, options);
    } catch (error) {
      // A command that hangs, or a channel the server does not open, means a connection that
      // died under us: mark it so the pool opens a new one.
      if (error instanceof SshHostError && ['timeout', 'ssh_error'].includes(error.reason)) {
        closed = true;
        client.end();
      }

      throw error;
    } finally {
      release();
    }
  };

  const sftp = (): Promise<SFTPWrapper> => {
    sftpSession ??= new Promise<SFTPWrapper>((resolve, reject) => {
      client.sftp((error, session) => {
        if (error) {
          sftpSession = null;
          reject(new SshHostError(label, 'ssh_error', `SFTP is not available: ${error.message}`));

          return;
        }

        session.on('close', () => {
          sftpSession = null;
        });
        resolve(session);
      });
    });

    return sftpSession;
  };

  return {
    label,
    hostKey,
    get closed() {
      return closed;
    },
    exec,
    sftp,
    close: () => {
      closed = true;
      client.end();
    },
  };
}

function execOnce(
  client: Client,
  label: string,
  command: string,
  options: ExecOptions,
): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    let channel: ClientChannel | null = null;
    const timer = setTimeout(() => {
      channel?.close();
      const seconds = Math.round(options.timeoutMillis / 1000);
      reject(new SshHostError(label, 'timeout', `a command did not finish within ${seconds} s`));
    }, options.timeoutMillis);
    client.exec(command, (error, opened) => {
      if (error) {
        clearTimeout(timer);
        reject(new SshHostError(label, 'ssh_error', `cannot run a command: ${error.message}`));

        return;
      }

      channel = opened;
      const stdout: Buffer[] = [];
      const stderr: Buffer[] = [];
      let code: number | null = null;
      let signal: string | null = null;
      opened.on('data', (chunk: Buffer) => stdout.push(chunk));
      opened.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
      opened.on('exit', (exitCode: number | null, exitSignal?: string) => {
        code = exitCode;
        signal = exitSignal ?? null;
      });
      opened.on('close', () => {
        clearTimeout(timer);
        resolve({ code, signal, stdout: Buffer.concat(stdout), stderr: Buffer.concat(stderr) });
      });
      opened.end(options.stdin);
    });
  });
}
