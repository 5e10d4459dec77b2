import {Status, statusName} from './status.js';

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

/**
 * The backoff waits of a run, which a cancel ends at once. One abort listener for all of them: a
 * listener per waiting record (`timers/promises` with the signal) passed Node's limit of 10 as soon
 * as 11 records were waiting, and printed a MaxListenersExceededWarning that reads like a leak.
 */
export class BackoffWaits {
  readonly #signal: AbortSignal | undefined;
  readonly #waiting = new Set<() => void>();
  readonly #onAbort = () => {
    for (const wake of this.#waiting) wake();
    this.#waiting.clear();
  };

  constructor(signal?: AbortSignal) {
    this.#signal = signal;
    signal?.addEventListener('abort', this.#onAbort, {once: true});
  }

  /** Waits `ms`; resolves false at once if the signal aborts (or has), true when the time is up. */
  wait(ms: number): Promise<boolean> {
    if (this.#signal?.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const cancel = () => {
        clearTimeout(timer);
        resolve(false);
      };
      const timer = setTimeout(() => {
        this.#waiting.delete(cancel);
        resolve(true);
      }, ms);
      this.#waiting.add(cancel);
    });
  }

  /** Removes the abort listener. Idempotent. */
  close(): void {
    this.#signal?.removeEventListener('abort', this.#onAbort);
  }
}

/** The outcome of a record whose retry a cancel stopped: CANCELLED, with what its last attempt said. */
export function cancelledRetry<T extends {readonly code: number; readonly details: string; readonly latencyMs: number}>(last: T, attempts: number): {ok: false; code: number; details: string; latencyMs: number} {
  return {ok: false, code: Status.CANCELLED, details: `cancelled before retrying (attempt ${attempts} ended ${statusName(last.code)}: ${last.details})`, latencyMs: last.latencyMs};
}
