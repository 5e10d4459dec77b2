import {setTimeout as sleep} from 'node:timers/promises';

/**
 * Limits calls started per second over the whole run: a token bucket refilled at `rps` per second
 * that holds at most a tenth of a second of tokens, so a stall is not followed by a burst.
 */
export class RateLimiter {
  #intervalMs: number;
  #burst: number;
  #tokens: number;
  #last = performance.now();
  /** The tail of the waiters, so tokens are handed out in order. */
  #queue: Promise<void> = Promise.resolve();

  constructor(rps: number) {
    if (!(rps > 0)) throw new TypeError(`Expected \`rps\` to be a number above 0, got \`${rps}\` (${typeof rps})`);
    this.#intervalMs = 1000 / rps;
    this.#burst = Math.max(1, Math.floor(rps / 10));
    this.#tokens = 1;
  }

  /** Changes the rate from now on (`rampUp`). Minimum: above 0. */
  setRate(rps: number): void {
    if (!(rps > 0)) throw new TypeError(`Expected \`rps\` to be a number above 0, got \`${rps}\` (${typeof rps})`);
    this.#intervalMs = 1000 / rps;
    this.#burst = Math.max(1, Math.floor(rps / 10));
  }

  /** Resolves when the next call may start. */
  take(): Promise<void> {
    const turn = this.#queue.then(() => this.#wait());
    this.#queue = turn;
    return turn;
  }

  async #wait(): Promise<void> {
    for (;;) {
      const now = performance.now();
      this.#tokens = Math.min(this.#burst, this.#tokens + (now - this.#last) / this.#intervalMs);
      this.#last = now;
      if (this.#tokens >= 1) {
        this.#tokens -= 1;
        return;
      }
      await sleep(Math.max(1, (1 - this.#tokens) * this.#intervalMs));
    }
  }
}
