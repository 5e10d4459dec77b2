import {setTimeout as sleep} from 'node:timers/promises';
import {Status} from './status.js';

/** Retry policy of a job (`retry:` key). Durations are ms here. */
export interface RetryPolicy {
  /** Attempts in all, the first included; 1 = no retry. Minimum: 1. @default 1 */
  readonly maxAttempts: number;
  /** Backoff before the first retry, in ms. @default 100 */
  readonly initialBackoffMs: number;
  /** Upper bound of a backoff, in ms. @default 10_000 */
  readonly maxBackoffMs: number;
  /** Growth of the backoff from one retry to the next. Minimum: 1. @default 2 */
  readonly backoffMultiplier: number;
  /** Status codes worth another attempt. @default [UNAVAILABLE] */
  readonly retryableStatusCodes: ReadonlySet<number>;
  /** Retry throttling; undefined = the default bucket (see `RetryThrottle`). */
  readonly throttle?: {readonly maxTokens: number; readonly tokenRatio: number};
}

export const DEFAULT_RETRY: RetryPolicy = {
  maxAttempts: 1,
  initialBackoffMs: 100,
  maxBackoffMs: 10_000,
  backoffMultiplier: 2,
  retryableStatusCodes: new Set([Status.UNAVAILABLE]),
};

/**
 * The backoff before retry number `retry` (1 = first retry), gRPC style (A6): exponential, capped,
 * with full jitter, a random delay between 0 and the capped backoff, so that callers that failed
 * together do not retry together.
 */
export function backoffMs(policy: RetryPolicy, retry: number, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxBackoffMs, policy.initialBackoffMs * policy.backoffMultiplier ** (retry - 1));
  return random() * ceiling;
}

export function isRetryable(policy: RetryPolicy, code: number): boolean {
  return policy.retryableStatusCodes.has(code);
}

/** Waits `ms`, or less when the signal aborts (then resolves false). */
export async function waitBackoff(ms: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return false;
  try {
    await sleep(ms, undefined, signal ? {signal} : undefined);
    return true;
  } catch {
    return false;
  }
}
