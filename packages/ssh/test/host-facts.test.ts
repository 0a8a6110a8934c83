import { describe, expect, it } from 'vitest';
import { addAuthorizedKey, keyIdentity, removeAuthorizedKey } from '../src/authorized-keys.js';
import { cpuArch, parseHostProbe, totalBlocks } from '../src/host-probe.js';

const projectKey = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIProject dstack-project';
const userKey = 'ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQUser user@laptop';

describe('authorized_keys editing', () => {
  it('appends the key tagged, creating the text when the file is missing', () => {
    expect(addAuthorizedKey(null, projectKey)).toEqual({
      text: `${projectKey} # added by dstack\n`,
      added: true,
    });
    expect(addAuthorizedKey(`${userKey}`, projectKey).text).toBe(
      `${userKey}\n${projectKey} # added by dstack\n`,
    );
  });

  it('skips a key that is already there, with options or another comment', () => {
    const present = `command="echo hi",no-pty ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIProject me\n`;

    expect(addAuthorizedKey(present, projectKey)).toEqual({ text: present, added: false });
  });

  it('removes only the tagged line of this key', () => {
    const before = `${userKey}\n# ${projectKey}\n`;
    const { text } = addAuthorizedKey(before, projectKey);
    const untagged = `${before}${projectKey}\n`;

    expect(removeAuthorizedKey(text, projectKey)).toBe(before);
    expect(removeAuthorizedKey(untagged, projectKey)).toBe(untagged);
    expect(keyIdentity(`# ${projectKey}`)).toBeNull();
  });
});

describe('host facts', () => {
  it('reads the probe output, nvidia-smi lines included', () => {
    const facts = parseHostProbe(
      [
        'arch=x86_64',
        'cpus=64',
        'mem_kib=528012345',
        'disk_kib=1966080000',
        'home=/home/ubuntu',
        'python=3.10',
        'addr=127.0.0.1/8',
        'addr=10.0.0.5/24',
        'gpu=NVIDIA A100-SXM4-80GB, 81920, 550.54.15',
        'gpu=NVIDIA H100 80GB HBM3, 81559, 550.54.15',
        '',
      ].join('\n'),
    );

    expect(facts).toEqual({
      arch: 'x86_64',
      cpus: 64,
      memoryMib: 515637,
      diskMib: 1920000,
      home: '/home/ubuntu',
      pythonVersion: '3.10',
      addresses: ['127.0.0.1', '10.0.0.5'],
      gpus: [
        { name: 'A100', memoryMib: 81920, driverVersion: '550.54.15' },
        { name: 'H100', memoryMib: 81559, driverVersion: '550.54.15' },
      ],
    });
    expect(parseHostProbe('python=\ncpus=\n')).toMatchObject({ pythonVersion: null });
  });

  it('accepts 64-bit x86 and arm only', () => {
    expect(cpuArch('x86_64')).toBe('x86');
    expect(cpuArch('aarch64')).toBe('arm');
    expect(cpuArch('i686')).toBeNull();
    expect(cpuArch('armv7l')).toBeNull();
  });

  it('splits a host into blocks', () => {
    expect(totalBlocks('auto', 32, 8)).toBe(8);
    expect(totalBlocks('auto', 4, 8)).toBe(4);
    expect(totalBlocks('auto', 16, 0)).toBe(16);
    expect(totalBlocks(4, 32, 8)).toBe(4);
    expect(totalBlocks(3, 32, 8)).toBeNull();
    expect(totalBlocks(2, 4, 0)).toBe(2);
  });
});
