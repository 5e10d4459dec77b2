/**
 * Retry throttling in the manner of gRPC's (proposal A6, `retryThrottling` in a service config): a
 * bucket of `maxTokens` tokens; each failed attempt with a retryable code takes one, each OK answer
 * gives back `tokenRatio`. A retry may go while more than half the tokens are left.
 *
 * Unlike A6, a refused retry is not a failed record: it waits for the bucket to fill again. The
 * throttle limits the *rate* of retries, never the work done: when most calls fail, retries slow to
 * the pace of the OK answers (and of a slow refill, `refillPerSec`, so that a backend that fails
 * every call still sees its records retried, slowly, until they run out of attempts).
 */
export interface RetryThrottleOptions {
  /** Size of the bucket. Minimum: 1. @default max(100, 2 × concurrency) */
  readonly maxTokens: number;
  /** Tokens given back per OK answer. @default 1 */
  readonly tokenRatio: number;
  /** Tokens given back per second whatever the answers. @default maxTokens (a full bucket a second) */
  readonly refillPerSec?: number;
}

export class RetryThrottle {
  readonly #maxTokens: number;
  readonly #tokenRatio: number;
  readonly #refillPerMs: number;
  #tokens: number;
  #refilledAt = performance.now();
  /** Retries waiting for tokens, in order. */
  #waiters: (() => void)[] = [];
  #timer: NodeJS.Timeout | undefined;
  /** Retries that had to wait. */
  #waited = 0;

  constructor(options: RetryThrottleOptions) {
    if (!(options.maxTokens >= 1)) throw new TypeError(`Expected \`maxTokens\` to be a number from 1 and up, got \`${options.maxTokens}\``);
    if (!(options.tokenRatio > 0)) throw new TypeError(`Expected \`tokenRatio\` to be a number above 0, got \`${options.tokenRatio}\``);
    this.#maxTokens = options.maxTokens;
    this.#tokenRatio = options.tokenRatio;
    this.#refillPerMs = (options.refillPerSec ?? options.maxTokens) / 1000;
    this.#tokens = options.maxTokens;
  }

  get tokens(): number {
    this.#refill();
    return this.#tokens;
  }

  /** Retries that waited for a token so far. */
  get waited(): number {
    return this.#waited;
  }

  onSuccess(): void {
    this.#tokens = Math.min(this.#maxTokens, this.#tokens + this.#tokenRatio);
    this.#wake();
  }

  onRetryableFailure(): void {
    this.#tokens = Math.max(0, this.#tokens - 1);
  }

  /** Whether a failed call may be retried now. */
  isRetryAllowed(): boolean {
    this.#refill();
    return this.#tokens > this.#maxTokens / 2;
  }

  /**
   * Resolves when a retry may go: at once (`undefined`, no promise) while the bucket is more than
   * half full, else once it is again. A retry that waits takes its place in line. `signal` ends the
   * wait early (resolves `false`).
   */
  acquire(signal?: AbortSignal): Promise<boolean> | undefined {
    if (this.#waiters.length === 0 && this.isRetryAllowed()) return undefined;
    if (signal?.aborted) return Promise.resolve(false);
    this.#waited++;
    return new Promise((resolve) => {
      const onAbort = () => {
        const index = this.#waiters.indexOf(go);
        if (index !== -1) this.#waiters.splice(index, 1);
        resolve(false);
      };
      const go = () => {
        signal?.removeEventListener('abort', onAbort);
        resolve(true);
      };
      signal?.addEventListener('abort', onAbort, {once: true});
      this.#waiters.push(go);
      this.#arm();
    });
  }

  /** Lets every waiting retry go (the run is ending). */
  releaseAll(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const go of waiters) go();
  }

  #refill(): void {
    const now = performance.now();
    this.#tokens = Math.min(this.#maxTokens, this.#tokens + (now - this.#refilledAt) * this.#refillPerMs);
    this.#refilledAt = now;
  }

  /** Hands out tokens to the waiters in order, one each, while the bucket stays at least half full. */
  #wake(): void {
    this.#refill();
    while (this.#waiters.length > 0 && this.#tokens - 1 >= this.#maxTokens / 2) {
      this.#tokens -= 1;
      this.#waiters.shift()!();
    }
    if (this.#waiters.length > 0) this.#arm();
  }

  #arm(): void {
    if (this.#timer || this.#waiters.length === 0) return;
    const missing = this.#maxTokens / 2 + 1 - this.#tokens;
    const delay = this.#refillPerMs > 0 ? Math.max(5, missing / this.#refillPerMs) : 1000;
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        this.#wake();
      },
      Math.min(delay, 1000),
    );
  }
}

export function defaultMaxTokens(concurrency: number): number {
  return Math.max(100, 2 * concurrency);
}
