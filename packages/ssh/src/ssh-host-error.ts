/** Why a host could not be reached or used. */
export type SshHostErrorReason =
  | 'unreachable'
  | 'refused'
  | 'timeout'
  | 'auth_failed'
  | 'bad_key'
  | 'host_key_changed'
  | 'unsupported_host'
  | 'missing_requirement'
  | 'bad_network'
  | 'bad_blocks'
  | 'command_failed'
  | 'ssh_error';

/** A failure on one host; the message names the host (`user@host:port`) and the cause. */
export class SshHostError extends Error {
  readonly host: string;
  readonly reason: SshHostErrorReason;

  constructor(host: string, reason: SshHostErrorReason, detail: string) {
    super(`${host}: ${detail}`);
    this.name = 'SshHostError';
    this.host = host;
    this.reason = reason;
  }
}

interface Ssh2Error extends Error {
  code?: string | number;
  level?: string;
}

/** Turns an ssh2 or socket error into an SshHostError that says what went wrong. */
export function classifySshError(host: string, error: unknown, port?: number): SshHostError {
  if (error instanceof SshHostError) {
    return error;
  }

  const err = error as Ssh2Error;
  const message = err?.message ?? String(error);
  if (err?.code === 'ECONNREFUSED' || /connection refused/i.test(message)) {
    const detail = port === undefined
      ? 'connection refused'
      : `connection refused (nothing listens on port ${port})`;

    return new SshHostError(host, 'refused', detail);
  }

  const unreachable = ['EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT'];
  if (typeof err?.code === 'string' && unreachable.includes(err.code)) {
    return new SshHostError(host, 'unreachable', `host unreachable (${err.code})`);
  }

  if (err?.level === 'client-timeout') {
    return new SshHostError(host, 'timeout', 'no SSH handshake in time (is it an SSH server?)');
  }

  if (err?.level === 'client-authentication') {
    return new SshHostError(
      host,
      'auth_failed',
      'authentication failed: the host did not accept the private key (publickey only)',
    );
  }

  if (/cannot parse privatekey|unsupported key format|encrypted private key/i.test(message)) {
    return new SshHostError(host, 'bad_key', `the private key cannot be used: ${message}`);
  }

  return new SshHostError(host, 'ssh_error', `SSH error: ${message}`);
}
