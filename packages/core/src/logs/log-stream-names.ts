import type { LogStream } from '../ports/log-store.js';

/**
 * The original's stream name, `<project>/<run>/<submission>/<job|runner>`, used by
 * CloudWatch and as a map key by in-process stores.
 */
export function logStreamKey(stream: LogStream): string {
  return [stream.projectName, stream.runName, stream.jobSubmissionId, stream.producer].join('/');
}
