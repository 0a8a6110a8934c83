import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

/** What the server command reads from its flags and the environment. */
export interface ServerCommandSettings {
  host: string;
  port: number;
  /** A pino level: fatal, error, warn, info, debug or trace. */
  logLevel: string;
  adminToken: string | undefined;
  /** Absolute. */
  serverDir: string;
  userProjectQuota: number;
  /** DSTACK_SERVER_EVENTS_TTL_SECONDS; undefined keeps the default. */
  eventsTtlSeconds: number | undefined;
  /** DSTACK_SERVER_METRICS_RUNNING_TTL_SECONDS; undefined keeps the default. */
  metricsRunningTtlSeconds: number | undefined;
  /** DSTACK_SERVER_METRICS_FINISHED_TTL_SECONDS; undefined keeps the default. */
  metricsFinishedTtlSeconds: number | undefined;
  /** DSTACK_SERVER_CONFIG_DISABLED: no config.yml at all. */
  configDisabled: boolean;
}

/** A flag or variable with a value the server cannot use. */
export class CommandLineError extends Error {
  override readonly name = 'CommandLineError';
}

const levels: Record<string, string> = {
  critical: 'fatal',
  fatal: 'fatal',
  error: 'error',
  warning: 'warn',
  warn: 'warn',
  info: 'info',
  debug: 'debug',
  trace: 'trace',
};

function logLevelOf(value: string): string {
  const level = levels[value.trim().toLowerCase()];

  if (level === undefined) {
    throw new CommandLineError(
      `Invalid log level '${value}': use one of CRITICAL, ERROR, WARNING, INFO, DEBUG`,
    );
  }

  return level;
}

function portOf(value: string, source: string): number {
  const port = Number(value);

  if (!/^\d+$/.test(value.trim()) || port > 65535) {
    throw new CommandLineError(`Invalid port '${value}' in ${source}: use 0 to 65535`);
  }

  return port;
}

function quotaOf(value: string | undefined): number {
  if (value === undefined || value.trim() === '') {
    return 10;
  }

  if (!/^\d+$/.test(value.trim())) {
    throw new CommandLineError(
      `Invalid DSTACK_USER_PROJECT_DEFAULT_QUOTA '${value}': use a whole number`,
    );
  }

  return Number(value);
}

/** A TTL variable in whole seconds; unset or empty leaves the default. */
function ttlFromEnv(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const value = env[name];

  if (value === undefined || value.trim() === '') {
    return undefined;
  }

  if (!/^\d+$/.test(value.trim())) {
    throw new CommandLineError(`Invalid ${name} '${value}': use a whole number of seconds`);
  }

  return Number(value);
}

/**
 * The admin token as given, when a client can send it: `Authorization: Bearer <token>` takes
 * one word of visible ASCII, so a token with a space or another character would lock the
 * admin out for good (later starts keep the stored token). The message leaves the value out.
 */
function adminTokenOf(value: string | undefined, source: string): string | undefined {
  if (value === undefined || value === '') {
    return undefined;
  }

  if (!/^[\x21-\x7e]+$/.test(value)) {
    throw new CommandLineError(
      `Invalid admin token in ${source}: use visible ASCII characters and no spaces, ` +
        'as clients send it in "Authorization: Bearer <token>"',
    );
  }

  return value;
}

/** The usage text of `dstack-server`. */
export const usage = `Usage: dstack-server [options]
       dstack-server copy-state ...
       dstack-server reencrypt ...

Options:
  --host <host>         bind address (DSTACK_SERVER_HOST, default 127.0.0.1)
  -p, --port <port>     port (DSTACK_SERVER_PORT, default 3000)
  -l, --log-level <lvl> CRITICAL, ERROR, WARNING, INFO or DEBUG (DSTACK_SERVER_LOG_LEVEL)
  --token <token>       admin token, used only when the admin user is first created
                        (DSTACK_SERVER_ADMIN_TOKEN)
  -h, --help            show this text
`;

/**
 * Reads the flags, then the `DSTACK_SERVER_*` variables, then the defaults. Throws a
 * CommandLineError for an unknown flag or a value that cannot be used.
 */
export function readServerCommandSettings(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
): ServerCommandSettings | 'help' {
  let parsed;

  try {
    parsed = parseArgs({
      args: [...argv],
      options: {
        host: { type: 'string' },
        port: { type: 'string', short: 'p' },
        'log-level': { type: 'string', short: 'l' },
        token: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (error) {
    throw new CommandLineError(`${(error as Error).message}\n\n${usage}`);
  }

  const { values } = parsed;

  if (values.help) {
    return 'help';
  }

  const portText = values.port ?? env['DSTACK_SERVER_PORT'];
  const serverDir = env['DSTACK_SERVER_DIR'] ?? join(homedir(), '.dstack', 'server');

  return {
    host: values.host ?? env['DSTACK_SERVER_HOST'] ?? '127.0.0.1',
    port: portText === undefined ? 3000 : portOf(portText, values.port ? '--port' : 'env'),
    logLevel: logLevelOf(values['log-level'] ?? env['DSTACK_SERVER_LOG_LEVEL'] ?? 'INFO'),
    adminToken: values.token === undefined
      ? adminTokenOf(env['DSTACK_SERVER_ADMIN_TOKEN'], 'DSTACK_SERVER_ADMIN_TOKEN')
      : adminTokenOf(values.token, '--token'),
    serverDir: resolve(serverDir),
    userProjectQuota: quotaOf(env['DSTACK_USER_PROJECT_DEFAULT_QUOTA']),
    eventsTtlSeconds: ttlFromEnv(env, 'DSTACK_SERVER_EVENTS_TTL_SECONDS'),
    metricsRunningTtlSeconds: ttlFromEnv(env, 'DSTACK_SERVER_METRICS_RUNNING_TTL_SECONDS'),
    metricsFinishedTtlSeconds: ttlFromEnv(env, 'DSTACK_SERVER_METRICS_FINISHED_TTL_SECONDS'),
    configDisabled: env['DSTACK_SERVER_CONFIG_DISABLED'] !== undefined,
  };
}
