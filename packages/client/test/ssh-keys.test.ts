import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveFleetSshKeys } from '../src/ssh-keys.js';

describe('resolveFleetSshKeys', () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'client-ssh-keys-'));
    await writeFile(join(dir, 'fleet_key'), 'FLEET PRIVATE\n');
    await writeFile(join(dir, 'fleet_key.pub'), 'ssh-ed25519 AAAAfleet user@host\n');
    await writeFile(join(dir, 'host_key'), 'HOST PRIVATE\n');
    await writeFile(join(dir, 'jump_key'), 'JUMP PRIVATE\n');
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads the fleet, host and proxy-jump identity files into ssh_key', async () => {
    const configuration = {
      type: 'fleet',
      name: 'on-prem',
      ssh_config: {
        user: 'dstack',
        identity_file: join(dir, 'fleet_key'),
        proxy_jump: { hostname: '127.0.0.9', user: 'jump', identity_file: join(dir, 'jump_key') },
        hosts: ['127.0.0.2', { hostname: '127.0.0.3', identity_file: join(dir, 'host_key') }],
      },
    };

    const resolved = await resolveFleetSshKeys(configuration);

    expect(resolved['ssh_config']).toEqual({
      user: 'dstack',
      identity_file: join(dir, 'fleet_key'),
      ssh_key: { public: 'ssh-ed25519 AAAAfleet user@host', private: 'FLEET PRIVATE\n' },
      proxy_jump: {
        hostname: '127.0.0.9',
        user: 'jump',
        identity_file: join(dir, 'jump_key'),
        ssh_key: { public: '', private: 'JUMP PRIVATE\n' },
      },
      hosts: [
        '127.0.0.2',
        {
          hostname: '127.0.0.3',
          identity_file: join(dir, 'host_key'),
          ssh_key: { public: '', private: 'HOST PRIVATE\n' },
        },
      ],
    });
    expect(configuration.ssh_config).not.toHaveProperty('ssh_key');
  });

  it('keeps a key given inline and leaves cloud fleets alone', async () => {
    const inline = {
      type: 'fleet',
      ssh_config: { identity_file: '/nowhere', ssh_key: { public: 'p', private: 'k' }, hosts: [] },
    };
    const cloud = { type: 'fleet', nodes: '0..2' };

    expect(await resolveFleetSshKeys(inline)).toEqual(inline);
    expect(await resolveFleetSshKeys(cloud)).toBe(cloud);
  });

  it('names the identity file it cannot read', async () => {
    const configuration = {
      type: 'fleet',
      ssh_config: { identity_file: join(dir, 'missing'), hosts: ['127.0.0.2'] },
    };

    await expect(resolveFleetSshKeys(configuration)).rejects.toThrow(
      `Cannot read the SSH identity file ${join(dir, 'missing')}: ENOENT`,
    );
  });
});
