import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateSshKeyPair } from '@dstack/core';
import type { DstackServer } from '../src/index.js';
import { addUser, createTestServer, post } from './helpers.js';

let server: DstackServer;
let alice: string;
let bob: string;

function sshString(data: Buffer | string): Buffer {
  const bytes = Buffer.from(data);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

/** A fresh ed25519 key in OpenSSH's one-line format. */
function ed25519Key(comment: string): string {
  const { publicKey } = generateKeyPairSync('ed25519');
  const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url');
  const blob = Buffer.concat([sshString('ssh-ed25519'), sshString(raw)]);
  return `ssh-ed25519 ${blob.toString('base64')} ${comment}`;
}

function keys(token: string | null, path: string, body?: unknown) {
  return post(server, `/api/users/public_keys/${path}`, token, body);
}

/** What ssh-keygen prints as the key's fingerprint. */
function keygenFingerprint(key: string): string {
  const output = execFileSync('ssh-keygen', ['-l', '-f', '-'], { input: key }).toString();
  return output.split(' ')[1]!;
}

beforeEach(async () => {
  server = await createTestServer();
  // A distinct millisecond per write keeps "newest first" exact.
  let clock = Date.now();
  server.ctx.now = () => (clock += 1);
  alice = await addUser(server, 'alice');
  bob = await addUser(server, 'bob');
});

afterEach(async () => {
  await server.close();
});

describe('users/public_keys', () => {
  it('adds keys with OpenSSH fingerprints and lists the caller\'s, newest first', async () => {
    const ed = ed25519Key('alice@laptop');
    const rsa = (await generateSshKeyPair('ignored')).publicKey;

    const added = await keys(alice, 'add', { key: ed });
    expect(added.statusCode).toBe(200);
    const info = added.json();
    expect(info).toEqual({
      id: info.id,
      added_at: info.added_at,
      name: 'alice@laptop',
      type: 'ssh-ed25519',
      fingerprint: keygenFingerprint(ed),
    });

    const named = await keys(alice, 'add', { key: rsa, name: 'work' });
    expect(named.json()).toMatchObject({
      name: 'work', type: 'ssh-rsa', fingerprint: keygenFingerprint(rsa),
    });

    const listed = (await keys(alice, 'list')).json() as { name: string }[];
    expect(listed.map((key) => key.name)).toEqual(['work', 'alice@laptop']);
    expect((await keys(bob, 'list')).json()).toEqual([]);
  });

  it('names a key without comment by the MD5 of its blob', async () => {
    const key = ed25519Key('x').split(' ').slice(0, 2).join(' ');
    const added = (await keys(alice, 'add', { key })).json();
    expect(added.name).toMatch(/^[0-9a-f]{32}$/);
  });

  it('refuses the same key twice for one user, not across users', async () => {
    const key = ed25519Key('shared');
    await keys(alice, 'add', { key });

    const again = await keys(alice, 'add', { key, name: 'other' });
    expect(again.statusCode).toBe(400);
    expect(again.json()).toEqual({
      detail: [{ msg: 'Resource exists', code: 'resource_exists' }],
    });
    expect((await keys(bob, 'add', { key })).statusCode).toBe(200);
  });

  it('refuses malformed and unsupported keys', async () => {
    const invalid = {
      detail: [{
        msg: 'Invalid public key, must be in OpenSSH public key format',
        code: 'error',
      }],
    };
    const ed = ed25519Key('c');
    const blob = ed.split(' ')[1]!;

    for (const key of ['', 'ssh-ed25519', 'ssh-ed25519 !!!', `ssh-rsa ${blob}`,
      `ssh-ed25519 ${Buffer.from(blob, 'base64').subarray(0, 30).toString('base64')}`]) {
      const response = await keys(alice, 'add', { key });
      expect(response.statusCode).toBe(400);
      expect(response.json()).toEqual(invalid);
    }

    const dss = Buffer.concat([sshString('ssh-dss'), sshString('p'), sshString('q')]);
    const unsupported = await keys(alice, 'add', { key: `ssh-dss ${dss.toString('base64')}` });
    expect(unsupported.json().detail[0].msg).toBe('Unsupported key type: ssh-dss');
    expect((await keys(alice, 'list')).json()).toEqual([]);
  });

  it('deletes only the caller\'s keys and records events', async () => {
    const mine = (await keys(alice, 'add', { key: ed25519Key('a') })).json();
    const theirs = (await keys(bob, 'add', { key: ed25519Key('b') })).json();

    const deleted = await keys(alice, 'delete', { ids: [mine.id, theirs.id] });
    expect(deleted.statusCode).toBe(200);
    expect(deleted.json()).toBeNull();
    expect((await keys(alice, 'list')).json()).toEqual([]);
    expect((await keys(bob, 'list')).json()).toHaveLength(1);

    const events = (await post(server, '/api/events/list', alice, {})).json() as
      { message: string }[];
    expect(events.map((event) => event.message).slice(0, 2)).toEqual([
      `Public key deleted. Fingerprint: ${mine.fingerprint}`,
      `Public key added. Fingerprint: ${mine.fingerprint}`,
    ]);
  });

  it('needs a token and checks bodies', async () => {
    expect([401, 403]).toContain((await keys(null, 'list')).statusCode);
    expect((await keys(alice, 'add', {})).statusCode).toBe(422);
    expect((await keys(alice, 'delete', { ids: ['nope'] })).statusCode).toBe(422);
  });
});
