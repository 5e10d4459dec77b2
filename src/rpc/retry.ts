import type {Metadata} from '@grpc/grpc-js';
import {Status} from '../codec/status.js';

/** Retry policy of a job (`retry:` key). Durations are ms here. */
export interface RetryPolicy {
  /** Attempts in all, the first included; 1 = no retry. Minimum: 1. @default 5 */
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

/**
 * The policy of a job with no `retry` key: UNAVAILABLE (the backend could not take the call, it did
 * not run it) is retried up to 5 attempts in all with exponential backoff from 100ms to 10s. Other
 * codes are not retried: the call may have run.
 */
export const DEFAULT_RETRY: RetryPolicy = {
  maxAttempts: 5,
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
 * Server pushback (gRFC A6): the `grpc-retry-pushback-ms` trailer of a failed attempt. A number of ms
 * is how long to wait before the next attempt; a negative or malformed value means "do not retry";
 * undefined when the server sent none.
 */
export function pushbackMs(trailers: Metadata | undefined): number | 'stop' | undefined {
  const values = trailers?.get('grpc-retry-pushback-ms');
  if (!values || values.length === 0) return undefined;
  const text = String(values[0]);
  return /^\d+$/.test(text) ? Number(text) : 'stop';
}

/**
 * Backoff sleeps that one stop signal ends early. One listener on the signal for all of them (a
 * listener per sleep on a shared signal makes Node warn about a leak past 10 waiting records).
 */
export class BackoffTimers {
  readonly #waiting = new Map<NodeJS.Timeout, (done: boolean) => void>();
  #stopped = false;

  constructor(signal?: AbortSignal) {
    if (signal?.aborted) this.#stopped = true;
    else signal?.addEventListener('abort', () => this.stop(), {once: true});
  }

  /** Resolves `true` after `ms`, or `false` at once when stopped. */
  wait(ms: number): Promise<boolean> {
    if (this.#stopped) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(timer);
        resolve(true);
      }, ms);
      this.#waiting.set(timer, resolve);
    });
  }

  /** Ends every sleep now (they resolve `false`), and any later one at once. Idempotent. */
  stop(): void {
    this.#stopped = true;
    for (const [timer, resolve] of this.#waiting) {
      clearTimeout(timer);
      resolve(false);
    }
    this.#waiting.clear();
  }
}
