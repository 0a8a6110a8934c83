import { createFileLogStore, silentLogger, type Logger, type LogStore } from '@dstack/core';
import { createCloudWatchLogsClient, createCloudWatchLogStore } from '@dstack/logs-cloudwatch';
import { createGcpLoggingClient, createGcpLogStore } from '@dstack/logs-gcp';

/** What openLogStore reads: the environment, and where file logs go by default. */
export interface OpenLogStoreOptions {
  /** The variables that pick and configure the store; normally `process.env`. */
  env: Record<string, string | undefined>;
  /** Root of the file store, used when no remote store is configured. */
  serverDir: string;
  logger?: Logger;
}

/**
 * Picks the log store as the original does: CloudWatch when
 * DSTACK_SERVER_CLOUDWATCH_LOG_GROUP is set, else GCP Logging when
 * DSTACK_SERVER_GCP_LOGGING_PROJECT is set, else files under `serverDir`. A configured
 * remote store that cannot start throws; it never falls back to files that other replicas
 * cannot read.
 */
export async function openLogStore(options: OpenLogStoreOptions): Promise<LogStore> {
  const env = options.env;
  const log = options.logger ?? silentLogger;
  const logGroup = value(env.DSTACK_SERVER_CLOUDWATCH_LOG_GROUP);
  const gcpProject = value(env.DSTACK_SERVER_GCP_LOGGING_PROJECT);

  if (logGroup !== undefined) {
    const region = value(env.DSTACK_SERVER_CLOUDWATCH_LOG_REGION) ?? value(env.AWS_REGION);
    const endpoint = value(env.DSTACK_SERVER_CLOUDWATCH_ENDPOINT);
    const setting = `DSTACK_SERVER_CLOUDWATCH_LOG_GROUP=${logGroup}`;
    const store = await start('CloudWatch', setting, () =>
      createCloudWatchLogStore({
        client: createCloudWatchLogsClient({ region, endpoint, credentials: awsKeys(env) }),
        logGroup,
        region,
        logger: log,
      }),
    );
    log.info({ logGroup, region }, 'run logs go to CloudWatch Logs');
    return store;
  }

  if (gcpProject !== undefined) {
    const endpoint = value(env.DSTACK_SERVER_GCP_LOGGING_ENDPOINT);
    const setting = `DSTACK_SERVER_GCP_LOGGING_PROJECT=${gcpProject}`;
    const store = await start('GCP Logging', setting, async () =>
      createGcpLogStore({
        logging: await createGcpLoggingClient({ projectId: gcpProject, endpoint }),
        projectId: gcpProject,
        logger: log,
      }),
    );
    log.info({ projectId: gcpProject }, 'run logs go to GCP Logging');
    return store;
  }

  return createFileLogStore({ serverDir: options.serverDir });
}

/** Runs a remote store's start-up check and names the variable to fix when it fails. */
async function start(
  kind: string,
  setting: string,
  open: () => Promise<LogStore>,
): Promise<LogStore> {
  try {
    return await open();
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`${kind} log storage (${setting}) cannot start: ${reason}`, { cause: error });
  }
}

// Keys from the given environment, so that the composition reads one env; without them
// the SDK's default chain (profiles, SSO, instance roles) applies.
function awsKeys(
  env: Record<string, string | undefined>,
): { accessKeyId: string; secretAccessKey: string; sessionToken?: string } | undefined {
  const accessKeyId = value(env.AWS_ACCESS_KEY_ID);
  const secretAccessKey = value(env.AWS_SECRET_ACCESS_KEY);
  const sessionToken = value(env.AWS_SESSION_TOKEN);

  if (accessKeyId === undefined || secretAccessKey === undefined) {
    return undefined;
  }

  return { accessKeyId, secretAccessKey, ...(sessionToken === undefined ? {} : { sessionToken }) };
}

function value(text: string | undefined): string | undefined {
  return text === undefined || text.trim() === '' ? undefined : text.trim();
}
