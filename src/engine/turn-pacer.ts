/**
 * Most calls started per event-loop turn. Node's HTTP/2 sends a session's frames once per turn, so
 * calls started in one turn reach the server together, are answered together, and come back as
 * one wave that the client handles in one turn again: client and server take turns instead of
 * working at once. Starting at most this many per turn and yielding (`setImmediate`, which runs
 * after HTTP/2's write) lets the first requests leave while the client is still busy with the
 * rest of the wave. Measured in bench/ (100 in flight): +40% calls/s at 0 ms, +25% at 20 ms;
 * 8 beat 4, 16 and 32.
 */
export const CALLS_PER_TURN = 8;

/** Hands out at most `perTurn` starts per event-loop turn, in arrival order. */
export class TurnPacer {
  readonly #perTurn: number;
  #started = 0;
  #waiters: (() => void)[] = [];
  #scheduled = false;

  constructor(perTurn = CALLS_PER_TURN) {
    this.#perTurn = perTurn;
  }

  /** `undefined` (no promise) when the caller may start now, else a promise of its turn. */
  take(): Promise<void> | undefined {
    if (this.#started < this.#perTurn && this.#waiters.length === 0) {
      this.#started++;
      this.#schedule();
      return undefined;
    }
    return new Promise((resolve) => {
      this.#waiters.push(resolve);
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(this.#turn);
  }

  readonly #turn = (): void => {
    this.#scheduled = false;
    this.#started = 0;
    while (this.#started < this.#perTurn && this.#waiters.length > 0) {
      this.#started++;
      this.#waiters.shift()!();
    }
    if (this.#waiters.length > 0 || this.#started > 0) this.#schedule();
  };
}
