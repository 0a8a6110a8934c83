import type {
  CreateLogStreamCommand,
  CreateLogStreamCommandOutput,
  DescribeLogStreamsCommand,
  DescribeLogStreamsCommandOutput,
  GetLogEventsCommand,
  GetLogEventsCommandOutput,
  PutLogEventsCommand,
  PutLogEventsCommandOutput,
} from '@aws-sdk/client-cloudwatch-logs';
import type { LogBatchLimits, RemoteLogStoreOptions } from '@dstack/core';

const minuteMillis = 60_000;
const hourMillis = 60 * minuteMillis;
const dayMillis = 24 * hourMillis;

/**
 * PutLogEvents limits. Age limits keep the original's 10 minutes of margin for clock drift
 * between this server and AWS.
 */
export const cloudWatchBatchLimits: LogBatchLimits = {
  maxEvents: 10_000,
  maxBytes: 1_048_576,
  eventOverheadBytes: 26,
  maxEventBytes: 262_144,
  maxSpanMillis: dayMillis,
  maxAgeMillis: 14 * dayMillis - 10 * minuteMillis,
  maxFutureMillis: 2 * hourMillis - 10 * minuteMillis,
  dropEmptyMessages: true,
};

/** How far ahead of the clock PutLogEvents accepts an event. */
export const maxFutureMillis = 2 * hourMillis;

/** Empty GetLogEvents pages a poll follows before it hands the token back, as the original. */
export const maxEmptyPagesFollowed = 10;

/** Options of createCloudWatchLogStore. */
export interface CloudWatchLogStoreOptions extends RemoteLogStoreOptions {
  /** A CloudWatchLogsClient, or anything that sends the same four commands. */
  client: CloudWatchLogsSender;
  /** The group must exist; the store never creates it. */
  logGroup: string;
  /** Used only for the console link returned with each page. */
  region?: string;
  /** Tries of a read or the start-up check, throttling and 5xx included. Defaults to 4. */
  maxReadAttempts?: number;
  /** Stream names remembered as existing; a forgotten one costs one DescribeLogStreams. */
  maxKnownStreams?: number;
}

/** The slice of the AWS SDK client the store uses: one `send` for four commands. */
export interface CloudWatchLogsSender {
  send(command: DescribeLogStreamsCommand): Promise<DescribeLogStreamsCommandOutput>;
  send(command: CreateLogStreamCommand): Promise<CreateLogStreamCommandOutput>;
  send(command: PutLogEventsCommand): Promise<PutLogEventsCommandOutput>;
  send(command: GetLogEventsCommand): Promise<GetLogEventsCommandOutput>;
}
