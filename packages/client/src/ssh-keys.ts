import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';

interface SshKey {
  public: string;
  private: string;
}

function expandHome(path: string): string {
  return path === '~' || path.startsWith('~/') ? join(homedir(), path.slice(1)) : path;
}

async function readKeyPair(identityFile: string): Promise<SshKey> {
  const path = expandHome(identityFile);
  const privateKey = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw new Error(`Cannot read the SSH identity file ${identityFile}: ${error.code ?? error}`);
  });

  // The server only logs in with the private half; the public one is informative, so a
  // missing `.pub` file is not an error.
  const publicKey = await readFile(`${path}.pub`, 'utf8').catch(() => '');

  return { public: publicKey.trim(), private: privateKey };
}

async function withKey(
  entry: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  const identityFile = entry['identity_file'];

  if (typeof identityFile !== 'string' || entry['ssh_key'] != null) {
    return entry;
  }

  return { ...entry, ssh_key: await readKeyPair(identityFile) };
}

/**
 * Reads every `identity_file` of a fleet's `ssh_config` (fleet-wide, per host, proxy jumps)
 * into `ssh_key`, as `dstack apply` does: the server cannot read the user's files.
 */
export async function resolveFleetSshKeys(
  configuration: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  const sshConfig = configuration['ssh_config'];

  if (typeof sshConfig !== 'object' || sshConfig === null) {
    return configuration;
  }

  const resolved = await withKey(sshConfig as Record<string, unknown>);

  if (typeof resolved['proxy_jump'] === 'object' && resolved['proxy_jump'] !== null) {
    resolved['proxy_jump'] = await withKey(resolved['proxy_jump'] as Record<string, unknown>);
  }

  if (Array.isArray(resolved['hosts'])) {
    resolved['hosts'] = await Promise.all(
      resolved['hosts'].map(async (host: unknown) => {
        if (typeof host !== 'object' || host === null) {
          return host;
        }

        const withHostKey = await withKey(host as Record<string, unknown>);
        const jump = withHostKey['proxy_jump'];

        if (typeof jump === 'object' && jump !== null) {
          withHostKey['proxy_jump'] = await withKey(jump as Record<string, unknown>);
        }

        return withHostKey;
      }),
    );
  }

  return { ...configuration, ssh_config: resolved };
}
