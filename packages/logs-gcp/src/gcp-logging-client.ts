import { v2 } from '@google-cloud/logging';
import { OAuth2Client } from 'google-auth-library';
import type { GcpLoggingClient } from './config.js';

export interface GcpLoggingClientOptions {
  projectId: string;
  /**
   * An endpoint such as `http://127.0.0.1:8085` for an emulator or a test server. A plain
   * `http` endpoint gets a placeholder token instead of the machine's credentials.
   */
  endpoint?: string;
}

/**
 * Builds the Cloud Logging client the server composition hands to createGcpLogStore. It
 * uses the REST transport of google-gax and Application Default Credentials.
 */
export function createGcpLoggingClient(options: GcpLoggingClientOptions): GcpLoggingClient {
  if (options.endpoint === undefined) {
    return new v2.LoggingServiceV2Client({ projectId: options.projectId, fallback: true });
  }

  const url = new URL(options.endpoint);
  const insecure = url.protocol === 'http:';
  const port = Number(url.port || (insecure ? 80 : 443));
  const authClient = insecure ? placeholderAuth() : undefined;

  return new v2.LoggingServiceV2Client({
    projectId: options.projectId,
    apiEndpoint: url.hostname,
    port,
    protocol: insecure ? 'http' : 'https',
    fallback: true,
    ...(authClient === undefined ? {} : { authClient }),
  });
}

function placeholderAuth(): OAuth2Client {
  const client = new OAuth2Client();
  client.setCredentials({ access_token: 'emulator', expiry_date: Number.MAX_SAFE_INTEGER });
  return client;
}
