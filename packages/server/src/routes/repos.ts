import type { FastifyInstance, FastifyRequest } from 'fastify';
import {
  checkCodeUploadSize,
  defaultCodeUploadLimitBytes,
  deleteRepos,
  getRepo,
  initRepo,
  listRepos,
  RequestValidationError,
  uploadCode,
} from '@dstack/core';
import type { WireRepoCreds, WireRepoInfo } from '@dstack/core';
import { parseBody, requireProject, validateBody } from '../http/index.js';
import type { JsonSchema } from '../http/index.js';
import type { RouteDeps } from './route-deps.js';

const getSchema: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['repo_id', 'include_creds'],
  properties: { repo_id: { type: 'string' }, include_creds: { type: 'boolean' } },
};

const repoInfoSchema: JsonSchema = {
  type: 'object',
  required: ['repo_type'],
  properties: { repo_type: { enum: ['remote', 'local', 'virtual'] } },
  allOf: [
    {
      if: { properties: { repo_type: { const: 'remote' } } },
      then: { required: ['repo_name'], properties: { repo_name: { type: 'string' } } },
    },
    {
      if: { properties: { repo_type: { const: 'local' } } },
      then: { required: ['repo_dir'], properties: { repo_dir: { type: 'string' } } },
    },
  ],
};

const initSchema: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['repo_id', 'repo_info'],
  properties: {
    repo_id: { type: 'string' },
    repo_info: repoInfoSchema,
    repo_creds: {
      type: ['object', 'null'],
      additionalProperties: false,
      required: ['clone_url'],
      properties: {
        clone_url: { type: 'string' },
        private_key: { type: ['string', 'null'], default: null },
        oauth_token: { type: ['string', 'null'], default: null },
      },
      default: null,
    },
  },
};

const deleteSchema: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['repos_ids'],
  properties: { repos_ids: { type: 'array', items: { type: 'string' } } },
};

const uploadQuerySchema: JsonSchema = {
  type: 'object',
  required: ['repo_id'],
  properties: { repo_id: { type: 'string' } },
};

interface InitBody {
  repo_id: string;
  repo_info: WireRepoInfo;
  repo_creds: WireRepoCreds | null;
}

/** Reads the upload limit the way the original does: bytes, 0 turns the check off. */
function codeUploadLimitBytes(env: NodeJS.ProcessEnv): number {
  const raw = env.DSTACK_SERVER_CODE_UPLOAD_LIMIT;
  const parsed = raw === undefined || raw.trim() === '' ? NaN : Number(raw);

  return Number.isInteger(parsed) ? parsed : defaultCodeUploadLimitBytes;
}

function missingFile(): RequestValidationError {
  return new RequestValidationError([
    { type: 'missing', loc: ['body', 'file'], msg: 'Field required', input: null },
  ]);
}

function queryOf<T>(request: FastifyRequest, schema: JsonSchema): T {
  try {
    return validateBody<T>({ ...(request.query as object) }, schema);
  } catch (error) {
    if (error instanceof RequestValidationError) {
      const issues = error.issues.map((issue) => ({
        ...issue,
        loc: ['query', ...issue.loc.slice(1)],
      }));
      throw new RequestValidationError(issues);
    }

    throw error;
  }
}

/** The `file` field of a multipart body: its filename and bytes. */
async function multipartFile(
  request: FastifyRequest,
): Promise<{ filename: string | null; bytes: Uint8Array }> {
  const contentType = request.headers['content-type'] ?? '';

  if (!/^multipart\/form-data/i.test(contentType) || !Buffer.isBuffer(request.body)) {
    throw missingFile();
  }

  let form: FormData;

  try {
    form = await new Response(request.body, { headers: { 'content-type': contentType } })
      .formData();
  } catch {
    throw missingFile();
  }

  const file = form.get('file');

  if (file === null || typeof file === 'string') {
    throw missingFile();
  }

  return { filename: file.name || null, bytes: new Uint8Array(await file.arrayBuffer()) };
}

/** `/api/project/{p}/repos/*`: any member; creds are per user, code blobs per repo. */
export function registerReposRoutes(app: FastifyInstance, deps: RouteDeps): void {
  const { ctx } = deps;
  const prefix = '/api/project/:project_name/repos';
  const limitBytes = codeUploadLimitBytes(process.env);

  app.post(`${prefix}/list`, async (request) => {
    const scope = await requireProject(request, 'member');

    return listRepos(ctx, scope.project);
  });

  app.post(`${prefix}/get`, async (request) => {
    const scope = await requireProject(request, 'member');
    const body = parseBody<{ repo_id: string; include_creds: boolean }>(request, getSchema);

    return getRepo(ctx, scope, body.repo_id, body.include_creds);
  });

  app.post(`${prefix}/init`, async (request) => {
    const scope = await requireProject(request, 'member');
    const body = parseBody<InitBody>(request, initSchema);
    await initRepo(ctx, scope, body.repo_id, body.repo_info, body.repo_creds);

    return null;
  });

  app.post(`${prefix}/delete`, async (request) => {
    const scope = await requireProject(request, 'member');
    const body = parseBody<{ repos_ids: string[] }>(request, deleteSchema);
    await deleteRepos(ctx, scope.project, body.repos_ids);

    return null;
  });

  // Multipart needs the raw bytes, so this route gets its own body parser.
  app.register(async (scoped) => {
    scoped.removeAllContentTypeParsers();
    scoped.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => {
      done(null, body);
    });

    scoped.post(`${prefix}/upload_code`, {
      // The code limit, not the app's body limit, bounds an upload; 0 turns it off.
      bodyLimit: limitBytes > 0 ? limitBytes : Number.MAX_SAFE_INTEGER,
      // Before the body is read: a declared size over the limit gets the original's 400
      // (with its advice) instead of a bare 413, and no bytes of it are buffered.
      preParsing: async (request, _reply, payload) => {
        await requireProject(request, 'member');
        queryOf<{ repo_id: string }>(request, uploadQuerySchema);
        const declared = Number(request.headers['content-length']);

        if (Number.isFinite(declared)) {
          checkCodeUploadSize(declared, limitBytes);
        }

        return payload;
      },
    }, async (request) => {
      const scope = await requireProject(request, 'member');
      const query = queryOf<{ repo_id: string }>(request, uploadQuerySchema);
      const file = await multipartFile(request);
      const declared = Number(request.headers['content-length']);
      const size = Number.isFinite(declared) ? declared : (request.body as Buffer).length;

      checkCodeUploadSize(size, limitBytes);
      await uploadCode(ctx, scope.project, query.repo_id, file.filename, file.bytes);

      return null;
    });
  });
}
