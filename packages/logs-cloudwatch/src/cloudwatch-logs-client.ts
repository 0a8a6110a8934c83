import { CloudWatchLogsClient } from '@aws-sdk/client-cloudwatch-logs';

/** Where and as whom createCloudWatchLogsClient connects. */
export interface CloudWatchLogsClientOptions {
  /** Without one, the SDK's own region lookup applies (AWS_REGION, the config file). */
  region?: string;
  /** Another endpoint, such as a local test server. */
  endpoint?: string;
  /** Static keys; without them the SDK's default credential chain applies. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
}

/** Builds the AWS SDK client the server composition hands to createCloudWatchLogStore. */
export function createCloudWatchLogsClient(
  options: CloudWatchLogsClientOptions = {},
): CloudWatchLogsClient {
  return new CloudWatchLogsClient({
    ...(options.region === undefined ? {} : { region: options.region }),
    ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
    ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
  });
}
