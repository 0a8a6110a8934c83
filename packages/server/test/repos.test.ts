import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createCipher, getRepoCode } from '@dstack/core';
import type { DstackServer } from '../src/index.js';
import { addUser, createTestServer, post } from './helpers.js';

const aesKey = {
  type: 'aes',
  name: 'key1',
  secret: Buffer.alloc(32, 7).toString('base64'),
} as const;

let server: DstackServer;
let tokens: Record<string, string>;

const remoteInfo = { repo_type: 'remote', repo_name: 'dstack' };
const creds = { clone_url: 'https://github.com/dstackai/dstack.git', oauth_token: 'gho_secret' };

function repos(path: string, token: string | null, body?: unknown) {
  return post(server, `/api/project/main/repos/${path}`, token, body);
}

function multipart(fields: { name: string; filename?: string; data: Buffer | string }[]) {
  const boundary = '----dstacktestboundary';
  const parts = fields.map((field) => {
    const filename = field.filename === undefined ? '' : `; filename="${field.filename}"`;
    const head = `--${boundary}\r\nContent-Disposition: form-data; name="${field.name}"`
      + `${filename}\r\nContent-Type: application/octet-stream\r\n\r\n`;
    return Buffer.concat([Buffer.from(head), Buffer.from(field.data), Buffer.from('\r\n')]);
  });
  const payload = Buffer.concat([...parts, Buffer.from(`--${boundary}--\r\n`)]);

  return { payload, contentType: `multipart/form-data; boundary=${boundary}` };
}

function upload(token: string, query: string, body: ReturnType<typeof multipart>) {
  return server.inject({
    method: 'POST',
    url: `/api/project/main/repos/upload_code${query}`,
    headers: { authorization: `Bearer ${token}`, 'content-type': body.contentType },
    payload: body.payload,
  });
}

async function repoRow(repoId: string) {
  return server.ctx.store.findOne('repos', { where: { name: repoId } });
}

beforeEach(async () => {
  server = await createTestServer({ cipher: createCipher([aesKey]) });
  tokens = { admin: server.adminToken };

  for (const [name, role] of [['pu', 'user'], ['pm', 'manager'], ['pa', 'admin']] as const) {
    tokens[name] = await addUser(server, name);
    await post(server, '/api/projects/main/add_members', server.adminToken,
      { members: [{ username: name, project_role: role }] });
  }

  tokens.outsider = await addUser(server, 'outsider');
});

afterEach(async () => {
  delete process.env.DSTACK_SERVER_CODE_UPLOAD_LIMIT;
  await server.close();
});

describe('repos guards', () => {
  it('lets any member in and keeps others out', async () => {
    for (const name of ['pu', 'pm', 'pa', 'admin']) {
      const listed = await repos('list', tokens[name]!);
      expect(listed.statusCode).toBe(200);
      expect(listed.json()).toEqual([]);
    }

    expect((await repos('list', tokens.outsider!)).json()).toEqual({
      detail: { msg: 'Access denied', code: null },
    });
    expect([401, 403]).toContain((await repos('list', null)).statusCode);
    expect((await post(server, '/api/project/ghost/repos/list', tokens.pu!)).statusCode)
      .toBe(404);
    // The role check comes before the body check.
    expect((await repos('init', tokens.outsider!, {})).statusCode).toBe(403);
  });
});

describe('repos init, get, list, delete', () => {
  it('upserts repos of each type and lists them', async () => {
    for (const [id, info] of [
      ['r-remote', remoteInfo],
      ['r-local', { repo_type: 'local', repo_dir: '/home/me/proj' }],
      ['r-virtual', { repo_type: 'virtual' }],
    ] as const) {
      const init = await repos('init', tokens.pu!, { repo_id: id, repo_info: info });
      expect(init.statusCode).toBe(200);
      expect(init.json()).toBeNull();
    }

    await repos('init', tokens.pu!, {
      repo_id: 'r-local',
      repo_info: { repo_type: 'local', repo_dir: '/srv/proj' },
    });

    const older = {
      repo_type: 'remote', repo_host_name: 'github.com', repo_port: null,
      repo_user_name: 'dstackai', repo_name: 'dstack',
    };
    await repos('init', tokens.pu!, { repo_id: 'r-older', repo_info: older });
    const got = await repos('get', tokens.pu!, { repo_id: 'r-older', include_creds: false });
    expect(got.json()).toEqual({ repo_id: 'r-older', repo_info: older, repo_creds: null });
    await repos('delete', tokens.pu!, { repos_ids: ['r-older'] });

    expect((await repos('list', tokens.pm!)).json()).toEqual([
      { repo_id: 'r-local', repo_info: { repo_type: 'local', repo_dir: '/srv/proj' } },
      { repo_id: 'r-remote', repo_info: remoteInfo },
      { repo_id: 'r-virtual', repo_info: { repo_type: 'virtual' } },
    ]);
  });

  it('keeps credentials per user, encrypted, and returns only the caller\'s', async () => {
    await repos('init', tokens.pu!, { repo_id: 'r1', repo_info: remoteInfo, repo_creds: creds });

    const own = await repos('get', tokens.pu!, { repo_id: 'r1', include_creds: true });
    expect(own.json()).toEqual({
      repo_id: 'r1',
      repo_info: remoteInfo,
      repo_creds: { ...creds, private_key: null },
    });

    const other = await repos('get', tokens.pm!, { repo_id: 'r1', include_creds: true });
    expect(other.json()).toEqual({ repo_id: 'r1', repo_info: remoteInfo, repo_creds: null });

    const without = await repos('get', tokens.pu!, { repo_id: 'r1', include_creds: false });
    expect(without.json().repo_creds).toBeNull();

    const stored = await server.ctx.store.find('repo_creds', {});
    expect(stored).toHaveLength(1);
    expect(stored[0]!.creds.startsWith('enc:aes:key1:')).toBe(true);
    expect(stored[0]!.creds).not.toContain('gho_secret');

    // Init without creds forgets the caller's.
    await repos('init', tokens.pu!, { repo_id: 'r1', repo_info: remoteInfo });
    const forgotten = await repos('get', tokens.pu!, { repo_id: 'r1', include_creds: true });
    expect(forgotten.json().repo_creds).toBeNull();
  });

  it('falls back to repo-level credentials', async () => {
    await repos('init', tokens.pu!, { repo_id: 'r1', repo_info: remoteInfo });
    const legacy = { clone_url: 'git@host:x.git', private_key: 'KEY', oauth_token: null };
    const row = await repoRow('r1');
    await server.ctx.store.update('repos', { id: row!.id }, {
      creds: server.ctx.cipher.encrypt(JSON.stringify(legacy)),
    });

    const got = await repos('get', tokens.pm!, { repo_id: 'r1', include_creds: true });
    expect(got.json().repo_creds).toEqual(legacy);
  });

  it('answers 400 for a missing repo and 422 for bad bodies', async () => {
    const missing = await repos('get', tokens.pu!, { repo_id: 'nope', include_creds: false });
    expect(missing.statusCode).toBe(400);
    expect(missing.json()).toEqual({
      detail: [{ msg: 'Resource not found', code: 'resource_not_exists' }],
    });

    const noFlag = await repos('get', tokens.pu!, { repo_id: 'nope' });
    expect(noFlag.statusCode).toBe(422);
    expect(noFlag.json().detail[0]).toMatchObject({
      type: 'missing',
      loc: ['body', 'include_creds'],
    });

    const noName = await repos('init', tokens.pu!, {
      repo_id: 'x',
      repo_info: { repo_type: 'remote' },
    });
    expect(noName.statusCode).toBe(422);
    expect(noName.json().detail[0].loc).toEqual(['body', 'repo_info', 'repo_name']);

    const extra = await repos('init', tokens.pu!, {
      repo_id: 'x',
      repo_info: { repo_type: 'virtual' },
      unknown: 1,
    });
    expect(extra.json().detail[0].type).toBe('extra_forbidden');
    expect(await repoRow('x')).toBeUndefined();
  });

  it('deletes repos with their creds and code, ignoring unknown ids', async () => {
    await repos('init', tokens.pu!, { repo_id: 'r1', repo_info: remoteInfo, repo_creds: creds });
    await repos('init', tokens.pu!, { repo_id: 'r2', repo_info: { repo_type: 'virtual' } });
    await upload(tokens.pu!, '?repo_id=r1', multipart([
      { name: 'file', filename: 'hash1', data: 'diff' },
    ]));

    const deleted = await repos('delete', tokens.pu!, { repos_ids: ['r1', 'ghost'] });
    expect(deleted.statusCode).toBe(200);
    expect(deleted.json()).toBeNull();
    expect((await repos('list', tokens.pu!)).json().map((r: { repo_id: string }) => r.repo_id))
      .toEqual(['r2']);
    expect(await server.ctx.store.count('repo_creds')).toBe(0);
    expect(await server.ctx.store.count('codes')).toBe(0);
  });
});

describe('repos upload_code', () => {
  it('stores the blob under its filename once', async () => {
    await repos('init', tokens.pu!, { repo_id: 'r1', repo_info: remoteInfo });
    const blob = Buffer.from([0, 1, 2, 255, 10, 13]);
    const first = await upload(tokens.pu!, '?repo_id=r1', multipart([
      { name: 'file', filename: 'abc123', data: blob },
    ]));
    expect(first.statusCode).toBe(200);
    expect(first.json()).toBeNull();

    const again = await upload(tokens.pu!, '?repo_id=r1', multipart([
      { name: 'file', filename: 'abc123', data: 'other bytes' },
    ]));
    expect(again.statusCode).toBe(200);

    const row = await repoRow('r1');
    expect(await getRepoCode(server.ctx.store, row!.id, 'abc123')).toEqual(blob);
    expect(await server.ctx.store.count('codes')).toBe(1);
  });

  it('answers 400 for an unknown repo, 422 without file or repo_id', async () => {
    const body = multipart([{ name: 'file', filename: 'h', data: 'x' }]);
    const unknown = await upload(tokens.pu!, '?repo_id=ghost', body);
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json()).toEqual({
      detail: [{ msg: 'Repo ghost does not exist', code: 'repo_does_not_exist' }],
    });

    const noQuery = await upload(tokens.pu!, '', body);
    expect(noQuery.statusCode).toBe(422);
    expect(noQuery.json().detail[0])
      .toMatchObject({ type: 'missing', loc: ['query', 'repo_id'] });

    await repos('init', tokens.pu!, { repo_id: 'r1', repo_info: remoteInfo });
    const noFile = await upload(tokens.pu!, '?repo_id=r1', multipart([
      { name: 'other', data: 'x' },
    ]));
    expect(noFile.statusCode).toBe(422);
    expect(noFile.json().detail[0]).toMatchObject({ type: 'missing', loc: ['body', 'file'] });

    const outsider = await upload(tokens.outsider!, '?repo_id=r1', body);
    expect(outsider.statusCode).toBe(403);
  });

  it('refuses an upload over DSTACK_SERVER_CODE_UPLOAD_LIMIT with 400', async () => {
    await server.close();
    process.env.DSTACK_SERVER_CODE_UPLOAD_LIMIT = '1000';
    server = await createTestServer({ cipher: createCipher([aesKey]) });
    await post(server, '/api/project/main/repos/init', server.adminToken,
      { repo_id: 'r1', repo_info: remoteInfo });

    const big = await upload(server.adminToken, '?repo_id=r1', multipart([
      { name: 'file', filename: 'h', data: Buffer.alloc(2000, 1) },
    ]));
    expect(big.statusCode).toBe(400);
    const detail = big.json().detail as { msg: string; code: string }[];
    expect(detail[0]!.code).toBe('error');
    expect(detail[0]!.msg)
      .toMatch(/^Repo diff size is 2\.\dKiB, which exceeds the limit of 1000\.0B\./);
    expect(await server.ctx.store.count('codes')).toBe(0);

    const small = await upload(server.adminToken, '?repo_id=r1', multipart([
      { name: 'file', filename: 'h', data: Buffer.alloc(100, 1) },
    ]));
    expect(small.statusCode).toBe(200);
  });

  it('refuses 2 MiB and more by default', async () => {
    await repos('init', tokens.pu!, { repo_id: 'r1', repo_info: remoteInfo });
    const big = await upload(tokens.pu!, '?repo_id=r1', multipart([
      { name: 'file', filename: 'h', data: Buffer.alloc(2 * 1024 * 1024, 1) },
    ]));

    expect(big.statusCode).toBe(400);
    // Both sizes print as 2.0MiB, so the message gives exact byte counts.
    expect(big.json().detail[0].msg).toMatch(
      /^Repo diff size is 2097\d{3}B, which exceeds the limit of 2097152B\./,
    );
  });
});

describe('runs and repos', () => {
  it('refuses a run for a repo that was not initialized, accepts it after init', async () => {
    const runSpec = {
      run_name: 'repo-run',
      repo_id: 'r-missing',
      repo_data: remoteInfo,
      configuration: { type: 'task', commands: ['true'] },
      ssh_key_pub: 'ssh-rsa AAAA test',
    };
    const plan = await post(server, '/api/project/main/runs/get_plan', tokens.pu!,
      { run_spec: runSpec });
    expect(plan.statusCode).toBe(400);
    expect(plan.json()).toEqual({
      detail: [{ msg: 'Repo r-missing does not exist', code: 'repo_does_not_exist' }],
    });

    const applied = await post(server, '/api/project/main/runs/apply', tokens.pu!,
      { plan: { run_spec: runSpec, current_resource: null }, force: false });
    expect(applied.json()).toEqual(plan.json());

    await repos('init', tokens.pu!, { repo_id: 'r-missing', repo_info: remoteInfo });
    const ok = await post(server, '/api/project/main/runs/apply', tokens.pu!,
      { plan: { run_spec: runSpec, current_resource: null }, force: false });
    expect(ok.statusCode).toBe(200);

    const listed = await post(server, '/api/runs/list', tokens.pu!,
      { project_name: 'main', repo_id: 'r-missing' });
    expect(listed.json().map((run: { run_spec: { run_name: string } }) => run.run_spec.run_name))
      .toEqual(['repo-run']);

    const unknown = await post(server, '/api/runs/list', tokens.pu!,
      { project_name: 'main', repo_id: 'r-other' });
    expect(unknown.json()).toEqual({
      detail: [{ msg: 'Repo r-other does not exist', code: 'repo_does_not_exist' }],
    });
  });
});
