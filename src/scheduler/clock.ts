/**
 * The scheduler's only source of time. The daemon uses `systemClock`; tests inject a
 * `ManualClock` and move time by hand, so no test sleeps until a tick.
 */
export interface Clock {
  /** Epoch ms. */
  now(): number;
  /** Calls `fn` after `ms`; returns a handle for `clearTimer`. */
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer: (fn, ms) => setTimeout(fn, ms),
  clearTimer: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

interface ManualTimer {
  readonly at: number;
  readonly seq: number;
  readonly fn: () => void;
}

/**
 * A clock that moves only when told to: `advanceTo`/`advance` fire due timers in time order.
 * Timers count elapsed time, as real ones do, so `stepWall` can move the wall clock alone (an NTP
 * step) without firing or delaying them.
 */
export class ManualClock implements Clock {
  #now: number;
  /** Elapsed time, which timers count: wall time minus every step. */
  #elapsed = 0;
  #seq = 0;
  readonly #timers = new Set<ManualTimer>();

  constructor(start: number | string | Date) {
    this.#now = new Date(start).getTime();
  }

  now(): number {
    return this.#now;
  }

  setTimer(fn: () => void, ms: number): unknown {
    const timer = {at: this.#elapsed + Math.max(0, ms), seq: this.#seq++, fn};
    this.#timers.add(timer);
    return timer;
  }

  clearTimer(handle: unknown): void {
    this.#timers.delete(handle as ManualTimer);
  }

  /** Timers waiting. */
  get pendingTimers(): number {
    return this.#timers.size;
  }

  /**
   * Moves time forward to `target`, firing each due timer at its own time, earliest first, and
   * letting promises settle after each (so work a timer starts can arm the next timer).
   */
  async advanceTo(target: number | string | Date): Promise<void> {
    const offset = this.#now - this.#elapsed;
    const end = new Date(target).getTime() - offset;
    for (;;) {
      await settle();
      const due = [...this.#timers].filter((t) => t.at <= end).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!due) break;
      this.#timers.delete(due);
      this.#elapsed = Math.max(this.#elapsed, due.at);
      this.#now = this.#elapsed + offset;
      due.fn();
    }
    this.#elapsed = Math.max(this.#elapsed, end);
    this.#now = this.#elapsed + offset;
    await settle();
  }

  /** Moves the wall clock alone by `deltaMs` (negative: back), as an NTP step does; timers keep their elapsed-time due. */
  stepWall(deltaMs: number): void {
    this.#now += deltaMs;
  }

  advance(ms: number): Promise<void> {
    return this.advanceTo(this.#now + ms);
  }
}

/** Lets queued promise callbacks and immediates run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}
