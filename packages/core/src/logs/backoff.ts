/** How a failed remote call is retried: exponential delays with random jitter. */
export interface BackoffOptions {
  /** Delay before the first retry. */
  initialDelayMillis?: number;
  /** No delay grows past this. */
  maxDelayMillis?: number;
  multiplier?: number;
  /** Fraction of each delay that is random, 0 to 1; spreads retries of many replicas. */
  jitter?: number;
}

/** Retry options with every default filled in. */
export type BackoffPolicy = Required<BackoffOptions>;

/** Defaults in the spirit of the AWS and Google SDKs' own backoff. */
export const defaultBackoffPolicy: BackoffPolicy = {
  initialDelayMillis: 200,
  maxDelayMillis: 10_000,
  multiplier: 2,
  jitter: 0.5,
};

/** Fills a policy's missing fields with the defaults. */
export function resolveBackoffPolicy(options: BackoffOptions = {}): BackoffPolicy {
  return { ...defaultBackoffPolicy, ...options };
}

/** The delay before retry number `attempt` (1 for the first retry). */
export function backoffDelayMillis(
  attempt: number,
  policy: BackoffPolicy,
  random: () => number = Math.random,
): number {
  const exponential = policy.initialDelayMillis * policy.multiplier ** Math.max(0, attempt - 1);
  const capped = Math.min(policy.maxDelayMillis, exponential);

  return Math.round(capped * (1 - policy.jitter * random()));
}

/** Options of retryWithBackoff: which errors may pass with another try, and how many tries. */
export interface RetryCallOptions extends BackoffOptions {
  /** Total tries, the first one included. */
  maxAttempts: number;
  isRetryable(error: unknown): boolean;
  /** Called before each wait; for logging. */
  onRetry?(error: unknown, attempt: number, delayMillis: number): void;
}

/**
 * Runs `call` until it succeeds, it throws an error that `isRetryable` refuses, or the
 * attempts run out; then the last error is thrown as it came.
 */
export async function retryWithBackoff<T>(
  call: () => Promise<T>,
  options: RetryCallOptions,
): Promise<T> {
  const policy = resolveBackoffPolicy(options);

  for (let attempt = 1; ; attempt += 1) {
    try {
      return await call();
    } catch (error) {
      if (attempt >= options.maxAttempts || !options.isRetryable(error)) {
        throw error;
      }

      const delayMillis = backoffDelayMillis(attempt, policy);
      options.onRetry?.(error, attempt, delayMillis);
      await sleep(delayMillis);
    }
  }
}

function sleep(millis: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, millis));
}
