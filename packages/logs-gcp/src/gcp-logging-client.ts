import { v2 } from '@google-cloud/logging';
import { GoogleAuth, OAuth2Client, type AuthClient } from 'google-auth-library';
import type { GcpLoggingClient } from './config.js';

/** The project and, for tests and emulators, the endpoint of createGcpLoggingClient. */
export interface GcpLoggingClientOptions {
  projectId: string;
  /**
   * An endpoint such as `http://127.0.0.1:8085` for an emulator or a test server. A plain
   * `http` endpoint gets a placeholder token instead of the machine's credentials.
   */
  endpoint?: string;
}

/**
 * Builds the Cloud Logging client the server composition hands to createGcpLogStore: the
 * REST transport of google-gax, with Application Default Credentials loaded here, so that
 * missing or broken credentials fail this call with the library's reason.
 */
export async function createGcpLoggingClient(
  options: GcpLoggingClientOptions,
): Promise<GcpLoggingClient> {
  const url = options.endpoint === undefined ? null : new URL(options.endpoint);
  const insecure = url?.protocol === 'http:';
  // Loaded up front: when the client loads them itself, a failure also surfaces as an
  // unhandled rejection inside the library, which would end the process.
  const authClient: AuthClient = insecure
    ? placeholderAuth()
    : await new GoogleAuth({
        projectId: options.projectId,
        scopes: v2.LoggingServiceV2Client.scopes,
      }).getClient();

  if (url === null) {
    return new v2.LoggingServiceV2Client({
      projectId: options.projectId,
      fallback: true,
      authClient,
    });
  }

  return new v2.LoggingServiceV2Client({
    projectId: options.projectId,
    apiEndpoint: url.hostname,
    port: Number(url.port || (insecure ? 80 : 443)),
    protocol: insecure ? 'http' : 'https',
    fallback: true,
    authClient,
  });
}

function placeholderAuth(): OAuth2Client {
  const client = new OAuth2Client();
  client.setCredentials({ access_token: 'emulator', expiry_date: Number.MAX_SAFE_INTEGER });
  return client;
}
