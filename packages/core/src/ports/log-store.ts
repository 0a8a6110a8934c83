/** Which log of a job submission: the user's program, or the agent's own diagnostics. */
export type LogProducer = 'job' | 'runner';

/** One log event as stored: a line of output (or a part of one) and when it was produced. */
export interface LogEvent {
  /** Epoch milliseconds. Agents keep these strictly increasing within a stream. */
  timestamp: number;
  logSource: 'stdout' | 'stderr';
  /** The text, decoded from UTF-8 with invalid bytes replaced. */
  message: string;
}

/** The stream a submission's events belong to. */
export interface LogStream {
  projectName: string;
  runName: string;
  jobSubmissionId: string;
  producer: LogProducer;
}

export interface LogPollRequest {
  /** Exclusive lower bound, epoch milliseconds. */
  startTime?: number | null;
  /** Upper bound: exclusive when ascending, inclusive when descending. */
  endTime?: number | null;
  descending?: boolean;
  /** The cursor a previous poll returned. */
  nextToken?: string | null;
  /** At most this many events; 1 to 1000. */
  limit: number;
}

export interface LogPage {
  events: LogEvent[];
  /** Set only when more events may follow. */
  nextToken: string | null;
  externalUrl?: string | null;
}

/**
 * Where run logs live. `poll` follows the file store's semantics on every adapter: an
 * exclusive `startTime`, pages in order, and an empty page (not an error) for a stream that
 * does not exist yet.
 */
export interface LogStore {
  /** Appends events to a stream; they read back in the order given. */
  write(stream: LogStream, events: readonly LogEvent[]): Promise<void>;

  /** Reads one page of a stream. A bad `nextToken` throws a LogTokenError. */
  poll(stream: LogStream, request: LogPollRequest): Promise<LogPage>;

  /** Writes out what is buffered; later writes may be refused. */
  close?(): Promise<void>;
}
