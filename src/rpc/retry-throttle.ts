/**
 * Retry throttling in the manner of gRPC's (proposal A6, `retryThrottling` in a service config):
 * a bucket of `maxTokens` tokens; each failed attempt with a retryable code takes one, each OK
 * answer gives back `tokenRatio`. A retry is allowed only while more than half the tokens are left.
 * When a backend is down, every call fails, the bucket empties after a few dozen failures, and the
 * run stops multiplying the load by `maxAttempts`; once calls succeed again, retries come back.
 */
export interface RetryThrottleOptions {
  /** Size of the bucket. Minimum: 1. @default max(100, 2 × concurrency) */
  readonly maxTokens: number;
  /** Tokens given back per OK answer. @default 1 */
  readonly tokenRatio: number;
}

export class RetryThrottle {
  readonly #maxTokens: number;
  readonly #tokenRatio: number;
  #tokens: number;

  constructor(options: RetryThrottleOptions) {
    if (!(options.maxTokens >= 1)) throw new TypeError(`Expected \`maxTokens\` to be a number from 1 and up, got \`${options.maxTokens}\``);
    if (!(options.tokenRatio > 0)) throw new TypeError(`Expected \`tokenRatio\` to be a number above 0, got \`${options.tokenRatio}\``);
    this.#maxTokens = options.maxTokens;
    this.#tokenRatio = options.tokenRatio;
    this.#tokens = options.maxTokens;
  }

  get tokens(): number {
    return this.#tokens;
  }

  onSuccess(): void {
    this.#tokens = Math.min(this.#maxTokens, this.#tokens + this.#tokenRatio);
  }

  onRetryableFailure(): void {
    this.#tokens = Math.max(0, this.#tokens - 1);
  }

  /** Whether a failed call may be retried now. */
  isRetryAllowed(): boolean {
    return this.#tokens > this.#maxTokens / 2;
  }
}

export function defaultMaxTokens(concurrency: number): number {
  return Math.max(100, 2 * concurrency);
}
