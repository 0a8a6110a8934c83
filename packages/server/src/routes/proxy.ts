import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { request as forward } from 'undici';
import {
  findProjectByName,
  isRunFinished,
  latestSubmissions,
  ResourceNotExistsError,
} from '@dstack/core';
import type { JobProvisioningData, JobSpec, RunSpec } from '@dstack/core';
import { requireProject } from '../http/index.js';
import type { RouteDeps } from './route-deps.js';

/** Request headers that describe one hop only and are not passed on. */
const hopHeaders = new Set([
  'connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer',
  'transfer-encoding', 'upgrade', 'host', 'content-length',
]);

interface ProxyParams {
  project_name: string;
  run_name: string;
  '*': string;
}

/** The address of a running replica of the service, or a 404-shaped error. */
async function replicaOf(
  deps: RouteDeps,
  projectName: string,
  runName: string,
): Promise<{ url: string; auth: boolean }> {
  const { store } = deps.ctx;
  const project = await findProjectByName(store, projectName);
  const runs = project === undefined
    ? []
    : await store.find('runs', { where: { projectId: project.id, runName, deleted: false } });
  const run = runs.find((candidate) => !isRunFinished(candidate.status));
  const spec = run?.runSpec as RunSpec | undefined;

  if (run === undefined || spec?.configuration.type !== 'service') {
    throw new ResourceNotExistsError(`Service ${projectName}/${runName} not found`);
  }

  const jobs = latestSubmissions(await store.find('jobs', { where: { runId: run.id } }));
  // Only running replicas take requests: a replica being retired is terminating already.
  const running = jobs.filter((job) => job.status === 'running' && job.jobNum === 0);
  const job = running[Math.floor(Math.random() * running.length)];
  const data = job?.provisioningData as JobProvisioningData | null | undefined;
  const port = (job?.jobSpec as JobSpec | undefined)?.service_port;

  if (job === undefined || data === null || data === undefined || port === null || !port) {
    throw new ResourceNotExistsError(`Service ${projectName}/${runName} has no running replica`);
  }

  const host = data.hostname ?? data.internal_ip ?? '127.0.0.1';
  return { url: `http://${host}:${port}`, auth: spec.configuration.auth !== false };
}

/** How long a request may wait for a replica that refuses connections to start listening. */
const refusedRetryMillis = 5000;

/**
 * Forwards a request; a refused connection (a replica that runs but does not listen yet, as
 * a new one of a rolling deployment) is tried again on a running replica picked afresh.
 * TODO: readiness probes would keep such replicas out of the pick in the first place.
 */
async function forwardToReplica(
  deps: RouteDeps,
  params: ProxyParams,
  firstUrl: string,
  options: {
    path: string;
    method: string;
    headers: Record<string, string>;
    body?: string | Buffer;
  },
): Promise<Awaited<ReturnType<typeof forward>>> {
  const deadline = Date.now() + refusedRetryMillis;
  let url = firstUrl;

  for (;;) {
    try {
      return await forward(`${url}${options.path}`, {
        method: options.method as 'GET',
        headers: options.headers,
        body: options.body,
      });
    } catch (error) {
      if ((error as { code?: string }).code !== 'ECONNREFUSED' || Date.now() > deadline) {
        throw error;
      }
    }

    await new Promise((resolve) => setTimeout(resolve, 100));
    url = (await replicaOf(deps, params.project_name, params.run_name)).url;
  }
}

async function proxyRequest(
  deps: RouteDeps,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<unknown> {
  const params = request.params as ProxyParams;
  const replica = await replicaOf(deps, params.project_name, params.run_name);

  if (replica.auth) {
    await requireProject(request, 'member');
  }

  const query = request.url.includes('?') ? request.url.slice(request.url.indexOf('?')) : '';
  const headers: Record<string, string> = {};

  for (const [name, value] of Object.entries(request.headers)) {
    // The member's token is for this server; an open service gets the header as sent.
    const ownToken = name === 'authorization' && replica.auth;

    if (!hopHeaders.has(name) && value !== undefined && !ownToken) {
      headers[name] = Array.isArray(value) ? value.join(', ') : value;
    }
  }

  // Bodies reach here as raw bytes of any content type. TODO: a body sent with an empty
  // Content-Type header is refused with 415 before it gets here; forward it as it is.
  const body = request.body === undefined || request.method === 'GET' || request.method === 'HEAD'
    ? undefined
    : Buffer.isBuffer(request.body) ? request.body : JSON.stringify(request.body);

  try {
    const upstream = await forwardToReplica(deps, params, replica.url, {
      path: `/${params['*'] ?? ''}${query}`,
      method: request.method,
      headers,
      body,
    });

    reply.code(upstream.statusCode);

    for (const [name, value] of Object.entries(upstream.headers)) {
      if (!hopHeaders.has(name) && value !== undefined) {
        reply.header(name, value);
      }
    }

    return reply.send(upstream.body);
  } catch (error) {
    deps.ctx.logger.warn({ runName: params.run_name, err: (error as Error).message },
      'service replica did not answer');
    return reply.code(502).send({ detail: 'Bad Gateway' });
  }
}

/** `/proxy/services/<project>/<run>/...`: forwards to the running replica of a service. */
export function registerProxyRoutes(app: FastifyInstance, deps: RouteDeps): void {
  const handler = (request: FastifyRequest, reply: FastifyReply) =>
    proxyRequest(deps, request, reply);

  app.all('/proxy/services/:project_name/:run_name', handler);
  app.all('/proxy/services/:project_name/:run_name/*', handler);
}
