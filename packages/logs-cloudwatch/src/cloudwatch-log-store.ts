import {
  CreateLogStreamCommand,
  DescribeLogStreamsCommand,
  GetLogEventsCommand,
  PutLogEventsCommand,
  type GetLogEventsCommandOutput,
} from '@aws-sdk/client-cloudwatch-logs';
import {
  createRemoteLogStore,
  LogTokenError,
  logStreamKey,
  remoteReadRetry,
  retryWithBackoff,
  ServerClientError,
  silentLogger,
  type BufferedLogStore,
  type LogEvent,
  type LogPage,
  type LogPollRequest,
  type LogSendResult,
  type LogStream,
} from '@dstack/core';
import {
  cloudWatchBatchLimits,
  maxEmptyPagesFollowed,
  maxFutureMillis,
  type CloudWatchLogStoreOptions,
} from './config.js';
import { errorName, isRetryableAwsError } from './aws-errors.js';

/**
 * Opens a LogStore on an existing CloudWatch Logs group: one stream per job submission and
 * producer, batched writes within every PutLogEvents limit, and reads with the file store's
 * poll semantics. Fails with "LogGroup '<g>' does not exist" when the group is missing.
 */
export async function createCloudWatchLogStore(
  options: CloudWatchLogStoreOptions,
): Promise<BufferedLogStore> {
  const { client, logGroup } = options;
  const log = (options.logger ?? silentLogger).child({ logStore: 'cloudwatch', logGroup });
  // Names known to exist, least recently used first; bounded, unlike the original's.
  const knownStreams = new Set<string>();
  const maxKnownStreams = options.maxKnownStreams ?? 10_000;
  const readRetry = remoteReadRetry(options, 4, isRetryableAwsError);

  await checkGroup();

  async function checkGroup(): Promise<void> {
    try {
      await retryWithBackoff(
        () => client.send(new DescribeLogStreamsCommand({ logGroupName: logGroup, limit: 1 })),
        readRetry,
      );
    } catch (error) {
      if (errorName(error) === 'ResourceNotFoundException') {
        throw new Error(`LogGroup '${logGroup}' does not exist`);
      }

      throw new Error(`Cannot use CloudWatch log group '${logGroup}': ${describe(error)}`, {
        cause: error,
      });
    }
  }

  async function ensureStream(name: string): Promise<void> {
    if (knownStreams.has(name)) {
      knownStreams.delete(name);
      knownStreams.add(name);
      return;
    }

    const found = await client.send(
      new DescribeLogStreamsCommand({ logGroupName: logGroup, logStreamNamePrefix: name }),
    );

    if (!found.logStreams?.some((stream) => stream.logStreamName === name)) {
      try {
        await client.send(
          new CreateLogStreamCommand({ logGroupName: logGroup, logStreamName: name }),
        );
      } catch (error) {
        // Another replica may have created it since we looked.
        if (errorName(error) !== 'ResourceAlreadyExistsException') {
          throw error;
        }
      }
    }

    knownStreams.add(name);

    if (knownStreams.size > maxKnownStreams) {
      knownStreams.delete(knownStreams.values().next().value as string);
    }
  }

  async function put(name: string, events: LogEvent[]): Promise<LogSendResult> {
    const output = await client.send(
      new PutLogEventsCommand({
        logGroupName: logGroup,
        logStreamName: name,
        logEvents: events.map((event) => ({ timestamp: event.timestamp, message: event.message })),
      }),
    );
    const info = output.rejectedLogEventsInfo;

    if (info === undefined) {
      return { ok: true };
    }

    const tooOld = Math.max(info.tooOldLogEventEndIndex ?? 0, info.expiredLogEventEndIndex ?? 0);
    const tooNew =
      info.tooNewLogEventStartIndex === undefined
        ? 0
        : events.length - info.tooNewLogEventStartIndex;
    return { ok: true, rejected: { tooOld, tooNew } };
  }

  async function send(stream: LogStream, events: LogEvent[]): Promise<LogSendResult> {
    const name = logStreamKey(stream);

    try {
      await ensureStream(name);

      try {
        return await put(name, events);
      } catch (error) {
        if (errorName(error) !== 'ResourceNotFoundException') {
          throw error;
        }

        // Retention deleted the stream: create it again and put once more.
        knownStreams.delete(name);
        await ensureStream(name);
        return await put(name, events);
      }
    } catch (error) {
      return { ok: false, retryable: isRetryableAwsError(error), error };
    }
  }

  async function getEvents(
    name: string,
    request: LogPollRequest,
    nextToken: string | undefined,
    endTime: number | undefined,
  ): Promise<GetLogEventsCommandOutput | null> {
    // CloudWatch's startTime is inclusive and endTime exclusive; poll's bounds are exclusive,
    // except a descending end, which is inclusive. Timestamps are whole milliseconds.
    const startTime = request.startTime == null ? undefined : request.startTime + 1;
    const end = endTime === undefined ? undefined : request.descending ? endTime + 1 : endTime;

    try {
      return await retryWithBackoff(
        () =>
          client.send(
            new GetLogEventsCommand({
              logGroupName: logGroup,
              logStreamName: name,
              startFromHead: !request.descending,
              limit: request.limit,
              startTime,
              endTime: end,
              nextToken,
            }),
          ),
        readRetry,
      );
    } catch (error) {
      if (errorName(error) === 'ResourceNotFoundException') {
        return null;
      }

      if (nextToken !== undefined && errorName(error) === 'InvalidParameterException') {
        throw new LogTokenError(nextToken);
      }

      log.error({ logStream: name, err: describe(error) }, 'failed to poll logs');
      throw new ServerClientError('Failed to poll logs from log storage');
    }
  }

  async function poll(stream: LogStream, request: LogPollRequest): Promise<LogPage> {
    const name = logStreamKey(stream);
    const externalUrl = consoleUrl(options.region, logGroup, name);

    if (request.limit <= 0) {
      return { events: [], nextToken: request.nextToken ?? null, externalUrl };
    }

    // An empty window needs no request (and the service may refuse start >= end).
    if (isEmptyWindow(request)) {
      return { events: [], nextToken: null, externalUrl };
    }

    // Without an end, an ascending read stops at a moving bound, so a live stream cannot page
    // forever, as in the original. The bound is the furthest ahead PutLogEvents accepts rather
    // than the original's now: a burst of lines can be stamped ahead of the clock.
    const endTime =
      request.endTime ?? (request.descending ? undefined : Date.now() + maxFutureMillis);
    let token = request.nextToken ?? undefined;

    for (let followed = 0; ; followed += 1) {
      const output = await getEvents(name, request, token, endTime);

      if (output === null) {
        return { events: [], nextToken: null, externalUrl };
      }

      const next = request.descending ? output.nextBackwardToken : output.nextForwardToken;
      const events = (output.events ?? []).map(
        (event): LogEvent => ({
          timestamp: event.timestamp ?? 0,
          logSource: 'stdout',
          message: event.message ?? '',
        }),
      );

      if (events.length > 0) {
        return {
          events: request.descending ? events.reverse() : events,
          nextToken: next ?? null,
          externalUrl,
        };
      }

      // The service hands back the token it was given once the stream has no more events.
      if (next === undefined || next === token) {
        return { events: [], nextToken: null, externalUrl };
      }

      // A sparse stream gives empty pages before more events; follow them, but not forever.
      if (followed + 1 >= maxEmptyPagesFollowed) {
        return { events: [], nextToken: next, externalUrl };
      }

      token = next;
    }
  }

  return createRemoteLogStore(options, { send, poll, limits: cloudWatchBatchLimits, logger: log });
}

function isEmptyWindow(request: LogPollRequest): boolean {
  if (request.startTime == null || request.endTime == null) {
    return false;
  }

  return request.descending
    ? request.startTime >= request.endTime
    : request.startTime + 1 >= request.endTime;
}

function consoleUrl(region: string | undefined, group: string, stream: string): string | null {
  if (region === undefined) {
    return null;
  }

  // The console's fragment wants each name URL-encoded twice, with '%' written as '$'.
  const encode = (name: string) => encodeURIComponent(encodeURIComponent(name)).replace(/%/g, '$');
  return (
    `https://console.aws.amazon.com/cloudwatch/home?region=${region}` +
    `#logsV2:log-groups/log-group/${encode(group)}/log-events/${encode(stream)}`
  );
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
