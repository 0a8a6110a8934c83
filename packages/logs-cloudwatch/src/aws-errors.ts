const retryableNames = new Set([
  'ThrottlingException',
  'Throttling',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'ServiceUnavailableException',
  'InternalFailure',
  'RequestTimeout',
  'RequestTimeoutException',
  'TimeoutError',
]);

const retryableCodes = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN']);

/** The SDK error's exception name, such as `ResourceNotFoundException`. */
export function errorName(error: unknown): string | undefined {
  return error instanceof Error ? error.name : undefined;
}

/** Throttling, a 5xx or a dropped connection: the same request may pass later. */
export function isRetryableAwsError(error: unknown): boolean {
  if (!(error instanceof Error)) {
    return false;
  }

  const details = error as Error & {
    code?: string;
    $fault?: string;
    $metadata?: { httpStatusCode?: number };
  };
  const status = details.$metadata?.httpStatusCode;

  return (
    retryableNames.has(error.name) ||
    details.$fault === 'server' ||
    (status !== undefined && (status >= 500 || status === 429)) ||
    (details.code !== undefined && retryableCodes.has(details.code))
  );
}
