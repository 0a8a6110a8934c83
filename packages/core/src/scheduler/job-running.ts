import type { JobSpec } from '../domain/job.js';
import type { JobProvisioningData } from '../domain/resources.js';
import type { RunSpec } from '../domain/run.js';
import type { AgentJob, AgentJobState } from '../ports/backend-provider.js';
import type { JobRecord, RunRecord } from '../records.js';
import { commandLinesOf, dstackEnv } from '../services/jobs.js';
import { jobRepoOf } from '../services/repos-checkout.js';
import { interpolateJobSecrets } from '../services/secret-interpolation.js';
import { getProjectSecrets } from '../services/secrets.js';
import { drainAgent } from './job-logs.js';
import { nudge } from './nudge.js';
import type { Claimed, PipelineDefinition } from './pipeline.js';
import { dueByStatus } from './pipeline.js';
import type { SchedulerRuntime } from './runtime.js';
import { inactivityExceeded, inactivityLimitOf } from './inactivity.js';
import { errorText, projectNameOf } from './runtime.js';

type JobItem = Claimed<'jobs'>;

/** The termination reason of a job the agent reports as finished. */
export function reasonOfAgentState(state: AgentJobState): string {
  if (state.terminationReason !== null) {
    return state.terminationReason;
  }

  if (state.status === 'done') {
    return 'done_by_runner';
  }

  return state.status === 'failed' ? 'container_exited_with_error' : 'terminated_by_server';
}

/** The latest submission of every job of the replica, when all of them have an instance. */
async function replicaNodes(
  rt: SchedulerRuntime,
  job: JobRecord,
): Promise<JobProvisioningData[] | null> {
  const jobs = await rt.ctx.store.find('jobs', {
    where: { runId: job.runId, replicaNum: job.replicaNum },
  });
  const latest = new Map<number, JobRecord>();

  for (const other of jobs) {
    const seen = latest.get(other.jobNum);

    if (seen === undefined || seen.submissionNum < other.submissionNum) {
      latest.set(other.jobNum, other);
    }
  }

  const count = (job.jobSpec as JobSpec).jobs_per_replica;
  const nodes: JobProvisioningData[] = [];

  for (let num = 0; num < count; num += 1) {
    const data = latest.get(num)?.provisioningData as JobProvisioningData | null | undefined;

    if (data === null || data === undefined) {
      return null;
    }

    nodes.push(data);
  }

  return nodes;
}

async function agentJobOf(
  rt: SchedulerRuntime,
  job: JobRecord,
  run: RunRecord,
  projectName: string,
  nodes: readonly JobProvisioningData[],
): Promise<AgentJob> {
  const spec = job.jobSpec as JobSpec;
  const runSpec = run.runSpec as RunSpec;
  const secrets = await getProjectSecrets(rt.ctx, run.projectId);
  const { env } = interpolateJobSecrets({ env: spec.env }, secrets);
  const shell = runSpec.configuration.shell;
  const repo = await jobRepoOf(rt.ctx, run, spec);

  return {
    jobSubmissionId: job.id,
    projectName,
    runName: run.runName,
    jobName: job.jobName,
    commands: commandLinesOf(runSpec),
    shell: typeof shell === 'string' ? shell : null,
    env: {
      ...env,
      ...dstackEnv({
        runId: run.id,
        runName: run.runName,
        repoId: String(runSpec.repo_id ?? 'none'),
        jobSubmissionId: job.id,
        jobSpec: spec,
        nodes,
      }),
    },
    workingDir: spec.working_dir,
    maxDurationSeconds: spec.max_duration,
    repo,
  };
}

async function terminate(item: JobItem, reason: string, message: string | null): Promise<void> {
  await item.commit({
    status: 'terminating',
    terminationReason: reason,
    terminationReasonMessage: message,
  });
}

/** PROVISIONING: wait for the agent and the other nodes, then submit the job to the agent. */
async function startJob(rt: SchedulerRuntime, item: JobItem, run: RunRecord): Promise<void> {
  const { ctx } = rt;
  const job = item.row;
  const data = job.provisioningData as JobProvisioningData;
  const project = await ctx.store.get('projects', run.projectId);
  const waited = ctx.now() - job.submittedAt;

  if (project === undefined) {
    await terminate(item, 'terminated_by_server', 'the project is gone');
    return;
  }

  const nodes = await replicaNodes(rt, job);

  if (nodes === null) {
    if (waited > rt.options.provisioningTimeoutMillis) {
      await terminate(item, 'waiting_instance_limit_exceeded', 'the other nodes did not start');
    }

    return;
  }

  const agent = rt.agents.get(job.instanceId ?? job.id, data);

  try {
    await agent.healthcheck();
  } catch (error) {
    if (waited > rt.options.provisioningTimeoutMillis) {
      await terminate(item, 'waiting_runner_limit_exceeded', errorText(error));
    }

    return;
  }

  let agentJob: AgentJob;

  try {
    agentJob = await agentJobOf(rt, job, run, project.name, nodes);
  } catch (error) {
    ctx.logger.warn({ runName: job.runName, jobId: job.id, err: errorText(error) },
      'cannot prepare the job');
    await terminate(item, 'terminated_by_server', errorText(error));
    return;
  }

  if (!(await item.held())) {
    return;
  }

  try {
    await agent.submit(agentJob);
  } catch (error) {
    const message = errorText(error);
    const stream = {
      projectName: project.name,
      runName: job.runName,
      jobSubmissionId: job.id,
      producer: 'runner' as const,
    };
    const line = `failed to start the job: ${message}\n`;
    await ctx.logs.write(stream, [{ timestamp: ctx.now(), logSource: 'stderr', message: line }])
      .catch(() => undefined);
    await terminate(item, 'executor_error', message);
    return;
  }

  if (await item.commit({ status: 'running', runnerTimestamp: 0, disconnectedAt: null })) {
    ctx.logger.info({ runName: job.runName, jobId: job.id }, 'job started');
    await nudge(ctx.store, 'runs', job.runId);
    ctx.hint?.('runs');
  }
}

/** RUNNING: store new logs and notice when the job ends or the agent stops answering. */
async function followJob(rt: SchedulerRuntime, item: JobItem): Promise<void> {
  const { ctx } = rt;
  const job = item.row;
  const data = job.provisioningData as JobProvisioningData;
  const projectName = await projectNameOf(rt, job.projectId);
  const agent = rt.agents.get(job.instanceId ?? job.id, data);

  try {
    const { last, cursor } = await drainAgent(rt, item, agent, projectName);
    const state = last?.state ?? null;

    if (state !== null && state.status !== 'running') {
      const committed = await item.commit({
        status: 'terminating',
        terminationReason: reasonOfAgentState(state),
        terminationReasonMessage: state.message,
        exitStatus: state.exitStatus,
        runnerTimestamp: cursor,
        // The process has ended: there is nothing to stop gracefully.
        gracefulTerminationAttempts: -1,
      });

      if (committed) {
        ctx.logger.info({ runName: job.runName, jobId: job.id, status: state.status },
          'job process ended');
        ctx.hint?.('jobs');
      }

      return;
    }

    if (state === null) {
      // Unknown to the agent: normal right after submit, a lost job if it lasts.
      await markDisconnected(rt, item, 'the agent does not know the job', {
        runnerTimestamp: cursor,
      });
      return;
    }

    const inactivityLimit = await inactivityLimitOf(rt, job);

    if (inactivityLimit !== null && inactivityExceeded(job, inactivityLimit, ctx.now())) {
      const committed = await item.commit({
        status: 'terminating',
        terminationReason: 'inactivity_duration_exceeded',
        terminationReasonMessage: `inactive for ${inactivityLimit} s`,
        runnerTimestamp: cursor,
        disconnectedAt: null,
      });

      if (committed) {
        ctx.logger.info({ runName: job.runName, jobId: job.id }, 'dev environment inactive');
        ctx.hint?.('jobs');
      }

      return;
    }

    await item.commit({ runnerTimestamp: cursor, disconnectedAt: null });
  } catch (error) {
    ctx.logger.warn({ runName: job.runName, jobId: job.id, err: errorText(error) },
      'agent pull failed');
    await markDisconnected(rt, item, errorText(error), {});
  }
}

/** Starts or continues the unreachable timer; past its limit the job fails. */
async function markDisconnected(
  rt: SchedulerRuntime,
  item: JobItem,
  message: string,
  patch: Partial<JobRecord>,
): Promise<void> {
  const now = rt.ctx.now();
  const since = item.row.disconnectedAt ?? now;

  if (now - since > rt.options.unreachableMillis) {
    await item.commit({
      ...patch,
      status: 'terminating',
      terminationReason: 'instance_unreachable',
      terminationReasonMessage: message,
    });
    return;
  }

  await item.commit({ ...patch, disconnectedAt: since });
}

async function processActiveJob(rt: SchedulerRuntime, item: JobItem): Promise<void> {
  if (item.row.status === 'running') {
    await followJob(rt, item);
    return;
  }

  const run = await rt.ctx.store.get('runs', item.row.runId);

  if (run === undefined) {
    return;
  }

  if (run.status === 'terminating') {
    return;
  }

  await startJob(rt, item, run);
}

/** The pipeline of jobs waiting for their agent: they start as soon as it answers. */
export function jobProvisioningPipeline(rt: SchedulerRuntime): PipelineDefinition<'jobs'> {
  return {
    name: 'JobProvisioningPipeline',
    table: 'jobs',
    due: (now) =>
      dueByStatus(now, [[['provisioning', 'pulling'], rt.options.intervals.jobsProvisioning]]),
    process: (item) => processActiveJob(rt, item),
  };
}

/** The pipeline of running jobs: logs and the end of the job, oldest pull first. */
export function jobRunningPipeline(rt: SchedulerRuntime): PipelineDefinition<'jobs'> {
  return {
    name: 'JobRunningPipeline',
    table: 'jobs',
    due: (now) => dueByStatus(now, [[['running'], rt.options.intervals.jobsRunning]]),
    process: (item) => processActiveJob(rt, item),
  };
}
