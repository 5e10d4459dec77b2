/**
 * Adaptive concurrency (`adaptive: true`): how many calls may be in flight, learned from the
 * backend's answers, under the job's `concurrency` cap. In the manner of Netflix's
 * concurrency-limits `Gradient2Limit`, with two additions for batch runs:
 *
 * - **latency**: a long-term average RTT (the backend's normal) against the RTT of the last window
 *   of calls. `gradient = clamp(tolerance × long / short, 0.5, 1)`; the limit moves towards
 *   `limit × gradient + queue` (smoothed), so when latency rises the limit comes down and when it
 *   is back to normal the limit grows by about `queue` per window;
 * - **shedding**: a call shed by the backend (RESOURCE_EXHAUSTED, or an answer with server
 *   pushback) cuts the limit by `1 - backoffRatio` at most once per window (AIMD's decrease), since
 *   a backend that sheds instead of queueing shows no latency rise at all;
 * - **slow start**: until the first sign of congestion the limit grows by half per window, so a run
 *   reaches its cap in a few round trips instead of crawling up from the initial limit.
 *
 * A window is half the limit's worth of answers (at least `minWindow`): about half a round trip.
 */
export interface AdaptiveLimitOptions {
  /** The cap: the job's `concurrency`. Minimum: 1. */
  readonly maxLimit: number;
  /** @default min(maxLimit, 20) */
  readonly initialLimit?: number;
  /** @default 1 */
  readonly minLimit?: number;
  /** How much slower than the long-term RTT the recent RTT may be before the limit comes down. @default 1.5 */
  readonly tolerance?: number;
  /** Weight of each new estimate. @default 0.2 */
  readonly smoothing?: number;
  /** Samples the long-term RTT averages over. @default 600 */
  readonly longWindow?: number;
  /** Least samples per window. @default 10 */
  readonly minWindow?: number;
  /** Share of the limit kept after a shed call. @default 0.9 */
  readonly backoffRatio?: number;
}

export class AdaptiveLimit {
  readonly #max: number;
  readonly #min: number;
  readonly #tolerance: number;
  readonly #smoothing: number;
  readonly #longWindow: number;
  readonly #minWindow: number;
  readonly #backoffRatio: number;
  #estimate: number;
  #longRtt = 0;
  #longCount = 0;
  #windowSum = 0;
  #windowCount = 0;
  #windowMaxInFlight = 0;
  #windowDropped = false;
  #windowDrops = 0;
  #slowStart = true;
  // min / mean / max of the limit over the run, for the summary.
  #lowest: number;
  #highest: number;
  #sum = 0;
  #updates = 0;

  constructor(options: AdaptiveLimitOptions) {
    if (!Number.isInteger(options.maxLimit) || options.maxLimit < 1) {
      throw new TypeError(`Expected \`maxLimit\` to be an integer from 1 and up, got \`${options.maxLimit}\` (${typeof options.maxLimit})`);
    }
    this.#max = options.maxLimit;
    this.#min = Math.min(options.minLimit ?? 1, this.#max);
    this.#tolerance = options.tolerance ?? 1.5;
    this.#smoothing = options.smoothing ?? 0.2;
    this.#longWindow = options.longWindow ?? 600;
    this.#minWindow = options.minWindow ?? 10;
    this.#backoffRatio = options.backoffRatio ?? 0.9;
    this.#estimate = Math.max(this.#min, Math.min(this.#max, options.initialLimit ?? 20));
    this.#lowest = this.limit;
    this.#highest = this.limit;
  }

  /** The calls that may be in flight now: an integer from `minLimit` to `maxLimit`. */
  get limit(): number {
    return Math.max(this.#min, Math.min(this.#max, Math.floor(this.#estimate)));
  }

  /** min / mean / max of the limit so far. */
  range(): {min: number; mean: number; max: number} {
    const mean = this.#updates === 0 ? this.limit : this.#sum / this.#updates;
    return {min: this.#lowest, mean: Math.round(mean * 10) / 10, max: this.#highest};
  }

  /**
   * One answered call: its round trip in ms, the calls in flight when it was answered, and whether
   * the backend shed it. Returns whether the limit changed.
   */
  onSample(rttMs: number, inFlight: number, dropped: boolean): boolean {
    if (dropped) {
      this.#windowDropped = true;
      this.#windowDrops++;
    } else {
      this.#windowSum += rttMs;
      this.#windowCount++;
    }
    this.#windowMaxInFlight = Math.max(this.#windowMaxInFlight, inFlight);
    const samples = this.#windowCount + this.#windowDrops;
    if (samples < Math.max(this.#minWindow, Math.floor(this.limit / 2))) return false;
    const before = this.limit;
    this.#update();
    return this.limit !== before;
  }

  #update(): void {
    const dropped = this.#windowDropped;
    const shortRtt = this.#windowCount > 0 ? this.#windowSum / this.#windowCount : undefined;
    const appLimited = this.#windowMaxInFlight < this.#estimate / 2;
    this.#windowSum = 0;
    this.#windowCount = 0;
    this.#windowMaxInFlight = 0;
    this.#windowDropped = false;
    this.#windowDrops = 0;
    if (shortRtt !== undefined) {
      // Long-term RTT: an average of the first samples, then an exponential one.
      this.#longCount++;
      const weight = this.#longCount < 10 ? 1 / this.#longCount : Math.min(1, (this.#minWindow / this.#longWindow) * 2);
      this.#longRtt = this.#longRtt + (shortRtt - this.#longRtt) * weight;
      // Latency back to normal after a long rise: let the long-term average come down faster.
      if (this.#longRtt / shortRtt > 2) this.#longRtt *= 0.95;
    }
    let next = this.#estimate;
    if (dropped) {
      this.#slowStart = false;
      next = this.#estimate * this.#backoffRatio;
    } else if (shortRtt !== undefined && !appLimited) {
      const gradient = Math.max(0.5, Math.min(1, (this.#tolerance * this.#longRtt) / shortRtt));
      if (gradient < 1) this.#slowStart = false;
      if (this.#slowStart) next = this.#estimate * 1.5;
      else {
        const queue = Math.max(1, Math.sqrt(this.#estimate));
        next = this.#estimate * (1 - this.#smoothing) + (this.#estimate * gradient + queue) * this.#smoothing;
      }
    }
    this.#estimate = Math.max(this.#min, Math.min(this.#max, next));
    const limit = this.limit;
    this.#lowest = Math.min(this.#lowest, limit);
    this.#highest = Math.max(this.#highest, limit);
    this.#sum += limit;
    this.#updates++;
  }
}

/**
 * `rampUp`: the share of the caps (concurrency, rps) allowed `elapsedMs` into a run, rising linearly
 * from one call to the whole cap over `rampUpMs`.
 */
export function rampShare(elapsedMs: number, rampUpMs: number): number {
  if (rampUpMs <= 0 || elapsedMs >= rampUpMs) return 1;
  return Math.max(0, elapsedMs / rampUpMs);
}

/** The concurrency allowed by a ramp-up: at least 1. */
export function rampConcurrency(cap: number, elapsedMs: number, rampUpMs: number): number {
  return Math.max(1, Math.min(cap, Math.ceil(cap * rampShare(elapsedMs, rampUpMs))));
}
