import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { DstackServer } from '../src/index.js';
import { createTestServer, post } from './helpers.js';

// Plans and applies only: no scheduler runs, so no host is ever contacted.
let server: DstackServer;

function pemKey(options: { passphrase?: string } = {}): string {
  const encryption = options.passphrase === undefined
    ? {}
    : { cipher: 'aes-256-cbc', passphrase: options.passphrase };

  return generateKeyPairSync('ed25519', {
    privateKeyEncoding: { type: 'pkcs8', format: 'pem', ...encryption },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  }).privateKey;
}

const key = pemKey();

function sshConfiguration(name: string, hosts: unknown[], extra: Record<string, unknown> = {}) {
  return {
    type: 'fleet',
    name,
    ssh_config: { user: 'dstack', ssh_key: { public: 'ssh-ed25519 AAA', private: key }, hosts,
      ...extra },
  };
}

function applyBody(configuration: Record<string, unknown>) {
  return { plan: { spec: { configuration }, current_resource: null }, force: false };
}

async function fleetNames(project: string): Promise<string[]> {
  const listed = await post(server, `/api/project/${project}/fleets/list`, server.adminToken, {});
  return (listed.json() as { name: string }[]).map((fleet) => fleet.name).sort();
}

beforeEach(async () => {
  server = await createTestServer();
});

afterEach(async () => {
  await server.close();
});

describe('SSH fleet hosts that another fleet already has', () => {
  beforeEach(async () => {
    const first = await post(server, '/api/project/main/fleets/apply', server.adminToken,
      applyBody(sshConfiguration('first', ['127.0.0.31', '127.0.0.32'])));
    expect(first.statusCode, first.body).toBe(200);
  });

  it('refuses them on plan and apply with a 400 naming them, and stores nothing', async () => {
    const configuration = sshConfiguration('second', ['127.0.0.33', { hostname: '127.0.0.32' }]);
    const plan = await post(server, '/api/project/main/fleets/get_plan', server.adminToken,
      { spec: { configuration } });
    const applied = await post(server, '/api/project/main/fleets/apply', server.adminToken,
      applyBody(configuration));

    for (const response of [plan, applied]) {
      expect(response.statusCode, response.body).toBe(400);
      expect(response.json()).toEqual({
        detail: [{ msg: 'Instances [127.0.0.32] are already assigned to a fleet.', code: 'error' }],
      });
    }

    expect(await fleetNames('main')).toEqual(['first']);
  });

  it('refuses them in another project too', async () => {
    const created = await post(server, '/api/projects/create', server.adminToken,
      { project_name: 'other' });
    expect(created.statusCode, created.body).toBe(200);

    const applied = await post(server, '/api/project/other/fleets/apply', server.adminToken,
      applyBody(sshConfiguration('mine', ['127.0.0.31'])));

    expect(applied.statusCode, applied.body).toBe(400);
    expect(applied.json().detail[0].msg).toContain('127.0.0.31');
    expect(await fleetNames('other')).toEqual([]);
  });

  it('lets the fleet that has them apply again and add a new host', async () => {
    const applied = await post(server, '/api/project/main/fleets/apply', server.adminToken,
      applyBody(sshConfiguration('first', ['127.0.0.31', '127.0.0.32', '127.0.0.34'])));

    expect(applied.statusCode, applied.body).toBe(200);
    expect(applied.json().instances.map((i: { instance_num: number }) => i.instance_num))
      .toEqual([0, 1, 2]);
  });

  it('frees them once the fleet that had them is deleted and its instances are gone', async () => {
    const { store } = server.ctx;
    const fleet = await store.findOne('fleets', { where: { name: 'first' } });
    const instances = await store.find('instances', { where: { fleetId: fleet!.id } });

    for (const instance of instances) {
      await store.update('instances', { id: instance.id }, { status: 'terminated', deleted: true });
    }

    const applied = await post(server, '/api/project/main/fleets/apply', server.adminToken,
      applyBody(sshConfiguration('second', ['127.0.0.32'])));

    expect(applied.statusCode, applied.body).toBe(200);
  });
});

describe('SSH ports out of range', () => {
  const cases: [string, Record<string, unknown>, string[]][] = [
    ['a host port of 70000', sshConfiguration('ports', [{ hostname: '127.0.0.41', port: 70000 }]),
      ['configuration', 'ssh_config', 'hosts', '0', 'port']],
    ['a host port of -1', sshConfiguration('ports', [{ hostname: '127.0.0.41', port: -1 }]),
      ['configuration', 'ssh_config', 'hosts', '0', 'port']],
    ['a fleet-wide port of 0', sshConfiguration('ports', ['127.0.0.41'], { port: 0 }),
      ['configuration', 'ssh_config', 'port']],
    ['a proxy jump port of 1e9', sshConfiguration('ports', ['127.0.0.41'], {
      proxy_jump: { hostname: '127.0.0.42', port: 1e9, user: 'j', identity_file: 'j.pem' },
    }), ['configuration', 'ssh_config', 'proxy_jump', 'port']],
  ];

  for (const [label, configuration, fields] of cases) {
    it(`refuses ${label} with a 400 naming the field, and stores nothing`, async () => {
      const applied = await post(server, '/api/project/main/fleets/apply', server.adminToken,
        applyBody(configuration));

      expect(applied.statusCode, applied.body).toBe(400);
      const [item] = applied.json().detail;
      expect(item.code).toBe('error');
      expect(item.fields).toEqual(fields);
      expect(item.msg).toMatch(/^configuration\.ssh_config\..*port: must be [<>]= /);
      expect(await fleetNames('main')).toEqual([]);
    });
  }

  it('takes 1 and 65535', async () => {
    const applied = await post(server, '/api/project/main/fleets/apply', server.adminToken,
      applyBody(sshConfiguration('ports', [{ hostname: '127.0.0.41', port: 65535 }],
        { port: 1 })));

    expect(applied.statusCode, applied.body).toBe(200);
  });
});

describe('SSH keys no login could use', () => {
  let keyDir: string;
  const openSsh: Record<string, string> = {};

  beforeAll(() => {
    keyDir = mkdtempSync(join(tmpdir(), 'bad-input-fleets-'));

    for (const [name, type, passphrase] of [
      ['ed25519', 'ed25519', ''], ['rsa', 'rsa', ''], ['ecdsa', 'ecdsa', ''],
      ['ed25519-passphrase', 'ed25519', 'secret'],
    ]) {
      const path = join(keyDir, name as string);
      execFileSync('ssh-keygen', ['-q', '-t', type, '-N', passphrase, '-C', '', '-f', path]);
      openSsh[name] = readFileSync(path, 'utf8');
    }
  });

  afterAll(() => {
    rmSync(keyDir, { recursive: true, force: true });
  });

  const unusable: [string, () => string][] = [
    ['text that is no key', () => 'not a key'],
    ['an armored key with a broken body',
      () => '-----BEGIN OPENSSH PRIVATE KEY-----\nfake\n-----END OPENSSH PRIVATE KEY-----\n'],
    ['a truncated OpenSSH key', () => openSsh['ed25519']!.slice(0, 120) +
      '\n-----END OPENSSH PRIVATE KEY-----\n'],
    ['an OpenSSH key with a passphrase', () => openSsh['ed25519-passphrase']!],
    ['a PEM key with a passphrase', () => pemKey({ passphrase: 'secret' })],
  ];

  for (const [label, privateKey] of unusable) {
    it(`refuses ${label} on plan and apply, and stores nothing`, async () => {
      const configuration = sshConfiguration('keys', ['127.0.0.51'], {
        ssh_key: { public: 'ssh-ed25519 AAA', private: privateKey() },
      });
      const plan = await post(server, '/api/project/main/fleets/get_plan', server.adminToken,
        { spec: { configuration } });
      const applied = await post(server, '/api/project/main/fleets/apply', server.adminToken,
        applyBody(configuration));

      for (const response of [plan, applied]) {
        expect(response.statusCode, response.body).toBe(400);
        expect(response.json().detail).toEqual([{
          msg: 'Unsupported key type. The key type should be RSA, ECDSA, or Ed25519 and ' +
            'should not be encrypted with passphrase.',
          code: 'error',
          fields: ['configuration', 'ssh_config', 'ssh_key', 'private'],
        }]);
      }

      expect(await fleetNames('main')).toEqual([]);
    });
  }

  it('refuses a host key without its private half', async () => {
    const applied = await post(server, '/api/project/main/fleets/apply', server.adminToken,
      applyBody(sshConfiguration('keys', [
        { hostname: '127.0.0.51', ssh_key: { public: 'ssh-ed25519 AAA' } },
      ])));

    expect(applied.statusCode, applied.body).toBe(400);
    expect(applied.json().detail).toEqual([{
      msg: 'Private key not provided', code: 'error',
      fields: ['configuration', 'ssh_config', 'hosts', '0', 'ssh_key', 'private'],
    }]);
  });

  it('takes OpenSSH RSA, ECDSA and Ed25519 keys and PEM keys, fleet-wide and per host',
    async () => {
      const hosts = ['rsa', 'ecdsa'].map((name, index) => ({
        hostname: `127.0.0.${52 + index}`, ssh_key: { public: 'p', private: openSsh[name] },
      }));
      const applied = await post(server, '/api/project/main/fleets/apply', server.adminToken,
        applyBody(sshConfiguration('keys', ['127.0.0.51', ...hosts], {
          ssh_key: { public: 'ssh-ed25519 AAA', private: openSsh['ed25519'] },
        })));
      const pem = await post(server, '/api/project/main/fleets/apply', server.adminToken,
        applyBody(sshConfiguration('pem', ['127.0.0.54'])));

      expect(applied.statusCode, applied.body).toBe(200);
      expect(applied.json().instances).toHaveLength(3);
      expect(pem.statusCode, pem.body).toBe(200);
    });
});
