/** gRPC status codes, as google-gax reports them. */
const grpcCode = {
  deadlineExceeded: 4,
  resourceExhausted: 8,
  aborted: 10,
  internal: 13,
  unavailable: 14,
} as const;

const retryableGrpcCodes = new Set<number>(Object.values(grpcCode));
const networkCodes = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN']);

interface ErrorDetails {
  code?: number | string;
  status?: number | string;
  response?: { status?: number };
  message?: string;
}

/** The HTTP status behind an error of the REST transport, when there is one. */
function httpStatus(error: ErrorDetails): number | undefined {
  const status = error.response?.status ?? error.status;
  return typeof status === 'number' ? status : undefined;
}

/** The read or write quota ran out: HTTP 429 or gRPC RESOURCE_EXHAUSTED. */
export function isQuotaError(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) {
    return false;
  }

  const details = error as ErrorDetails;
  return (
    details.code === grpcCode.resourceExhausted ||
    httpStatus(details) === 429 ||
    details.status === 'RESOURCE_EXHAUSTED' ||
    /RESOURCE_EXHAUSTED/.test(details.message ?? '')
  );
}

/** An error the same request may get past later: quota, 5xx, unavailable, a lost connection. */
export function isRetryableGcpError(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) {
    return false;
  }

  const details = error as ErrorDetails;
  const status = httpStatus(details);

  return (
    isQuotaError(error) ||
    (typeof details.code === 'number' && retryableGrpcCodes.has(details.code)) ||
    (typeof details.code === 'string' && networkCodes.has(details.code)) ||
    (status !== undefined && status >= 500)
  );
}

/** The request was refused as malformed: HTTP 400 or gRPC INVALID_ARGUMENT. */
export function isInvalidArgument(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) {
    return false;
  }

  const details = error as ErrorDetails;
  return details.code === 3 || httpStatus(details) === 400;
}

/** A short account of an error for a log line or a start-up message. */
export function describeGcpError(error: unknown): string {
  if (!(error instanceof Error)) {
    return String(error);
  }

  // The REST transport puts the service's JSON error body in the message.
  try {
    const body = JSON.parse(error.message) as { error?: { message?: string; status?: string } };

    if (body.error?.message !== undefined) {
      return `${body.error.status ?? 'error'}: ${body.error.message}`;
    }
  } catch {
    // Not JSON: the message is already plain text.
  }

  return error.message;
}
