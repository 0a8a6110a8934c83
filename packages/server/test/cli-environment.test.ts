import { homedir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CommandLineError, readServerCommandSettings } from '../src/cli/environment.js';

describe('the bin settings', () => {
  it('defaults to 127.0.0.1:3000, INFO and ~/.dstack/server', () => {
    expect(readServerCommandSettings([], {})).toEqual({
      host: '127.0.0.1',
      port: 3000,
      logLevel: 'info',
      adminToken: undefined,
      serverDir: join(homedir(), '.dstack', 'server'),
      userProjectQuota: 10,
      eventsTtlSeconds: undefined,
      configDisabled: false,
    });
  });

  it('reads DSTACK_SERVER_* variables and lets flags win over them', () => {
    const env = {
      DSTACK_SERVER_HOST: '0.0.0.0',
      DSTACK_SERVER_PORT: '8000',
      DSTACK_SERVER_LOG_LEVEL: 'WARNING',
      DSTACK_SERVER_ADMIN_TOKEN: 'from-env',
      DSTACK_SERVER_DIR: '/srv/dstack',
      DSTACK_USER_PROJECT_DEFAULT_QUOTA: '3',
      DSTACK_SERVER_EVENTS_TTL_SECONDS: '0',
      DSTACK_SERVER_CONFIG_DISABLED: '',
    };

    expect(readServerCommandSettings([], env)).toMatchObject({
      host: '0.0.0.0', port: 8000, logLevel: 'warn', adminToken: 'from-env',
      serverDir: '/srv/dstack', userProjectQuota: 3, eventsTtlSeconds: 0, configDisabled: true,
    });
    expect(readServerCommandSettings(
      ['--host', '::1', '-p', '9000', '--log-level', 'debug', '--token', 'from-flag'],
      env,
    )).toMatchObject({ host: '::1', port: 9000, logLevel: 'debug', adminToken: 'from-flag' });
  });

  it('refuses unknown flags and unusable values', () => {
    expect(() => readServerCommandSettings(['--prot', '1'], {})).toThrow(CommandLineError);
    expect(() => readServerCommandSettings(['--port', 'http'], {})).toThrow(/Invalid port/);
    expect(() => readServerCommandSettings(['-l', 'loud'], {})).toThrow(/Invalid log level/);
    expect(() => readServerCommandSettings([], { DSTACK_USER_PROJECT_DEFAULT_QUOTA: 'x' }))
      .toThrow(/DSTACK_USER_PROJECT_DEFAULT_QUOTA/);
    expect(() => readServerCommandSettings([], { DSTACK_SERVER_EVENTS_TTL_SECONDS: '1h' }))
      .toThrow(/DSTACK_SERVER_EVENTS_TTL_SECONDS '1h'/);
    expect(readServerCommandSettings(['--help'], {})).toBe('help');
  });
});
