import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DstackServer } from '../src/index.js';
import { createTestServer, post } from './helpers.js';

let server: DstackServer;

beforeAll(async () => {
  server = await createTestServer();
  const init = await post(server, '/api/project/main/repos/init', server.adminToken, {
    repo_id: 'big-repo', repo_info: { repo_type: 'local', repo_dir: '/home/user/big' },
  });
  expect(init.statusCode, init.body).toBe(200);
});

afterAll(async () => {
  await server.close();
});

/** The CLI's upload_code body: one `file` part named by the blob's hash. */
function uploadBody(blob: Buffer): { payload: Buffer; contentType: string } {
  const boundary = '----dstackbadinput';
  const head = `--${boundary}\r\nContent-Disposition: form-data; name="file"; `
    + 'filename="0123abcd"\r\n\r\n';

  return {
    payload: Buffer.concat([Buffer.from(head), blob, Buffer.from(`\r\n--${boundary}--\r\n`)]),
    contentType: `multipart/form-data; boundary=${boundary}`,
  };
}

function upload(blob: Buffer, token: string | null = server.adminToken, repoId = 'big-repo') {
  const { payload, contentType } = uploadBody(blob);
  const query = repoId === '' ? '' : `?repo_id=${repoId}`;

  return server.inject({
    method: 'POST',
    url: `/api/project/main/repos/upload_code${query}`,
    headers: {
      ...(token === null ? {} : { authorization: `Bearer ${token}` }),
      'content-type': contentType,
    },
    payload,
  });
}

describe('repos/upload_code with a body larger than the server reads', () => {
  // Larger than the app's 64 MiB body limit, so only the code limit can answer it.
  const huge = Buffer.alloc(65 * 1024 * 1024, 7);

  it('answers the original\'s 400 with the limit and its advice, not a bare 413', async () => {
    const response = await upload(huge);

    expect(response.statusCode, response.body.slice(0, 300)).toBe(400);
    const detail = response.json().detail as { msg: string; code: string }[];
    expect(detail).toHaveLength(1);
    expect(detail[0]!.code).toBe('error');
    expect(detail[0]!.msg).toBe(
      'Repo diff size is 65.0MiB, which exceeds the limit of 2.0MiB.'
        + ' Use .gitignore to exclude large files from the repo.'
        + ' This limit can be modified by setting the DSTACK_SERVER_CODE_UPLOAD_LIMIT'
        + ' environment variable.',
    );
  });

  it('still checks the token and the query before the size', async () => {
    const anonymous = await upload(huge, null);
    expect(anonymous.statusCode).toBe(401);
    expect(anonymous.json()).toEqual({ detail: 'Not authenticated' });

    const noRepoId = await upload(huge, server.adminToken, '');
    expect(noRepoId.statusCode).toBe(422);
    expect(noRepoId.json().detail[0].loc).toEqual(['query', 'repo_id']);
  });

  it('stores nothing of a refused upload and still takes one within the limit', async () => {
    const repo = await server.ctx.store.findOne('repos', { where: { name: 'big-repo' } });
    expect(await server.ctx.store.find('codes', { where: { repoId: repo!.id } })).toEqual([]);

    const small = await upload(Buffer.from('small tarball'));
    expect(small.statusCode, small.body).toBe(200);
    expect(small.json()).toBeNull();
    const codes = await server.ctx.store.find('codes', { where: { repoId: repo!.id } });
    expect(codes.map((code) => code.blobHash)).toEqual(['0123abcd']);
  });
});

describe('repos/upload_code with DSTACK_SERVER_CODE_UPLOAD_LIMIT above the app body limit', () => {
  it('takes an upload the operator allowed, larger than other requests may be', async () => {
    process.env.DSTACK_SERVER_CODE_UPLOAD_LIMIT = String(80 * 1024 * 1024);
    const roomy = await createTestServer();
    delete process.env.DSTACK_SERVER_CODE_UPLOAD_LIMIT;

    try {
      await post(roomy, '/api/project/main/repos/init', roomy.adminToken, {
        repo_id: 'big-repo', repo_info: { repo_type: 'local', repo_dir: '/home/user/big' },
      });
      const { payload, contentType } = uploadBody(Buffer.alloc(65 * 1024 * 1024, 1));
      const response = await roomy.inject({
        method: 'POST',
        url: '/api/project/main/repos/upload_code?repo_id=big-repo',
        headers: { authorization: `Bearer ${roomy.adminToken}`, 'content-type': contentType },
        payload,
      });

      expect(response.statusCode, response.body.slice(0, 300)).toBe(200);
      const codes = await roomy.ctx.store.find('codes', { where: {} });
      expect(codes.map((code) => code.blobHash)).toEqual(['0123abcd']);
    } finally {
      await roomy.close();
    }
  });
});
