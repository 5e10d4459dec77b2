/**
 * One caller waiting for a condition: `wait()` resolves at once when it holds, else at the first
 * `check()` that finds it holding. The executors' "room for another record" and "nothing left in
 * flight".
 */
export class Waiter {
  readonly #holds: () => boolean;
  #wake: (() => void) | undefined;

  constructor(holds: () => boolean) {
    this.#holds = holds;
  }

  wait(): Promise<void> {
    if (this.#holds()) return Promise.resolve();
    return new Promise((resolve) => (this.#wake = resolve));
  }

  /** Wakes the one waiting, if the condition now holds. */
  check(): void {
    if (!this.#wake || !this.#holds()) return;
    const wake = this.#wake;
    this.#wake = undefined;
    wake();
  }
}
