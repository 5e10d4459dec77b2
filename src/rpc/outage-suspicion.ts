/**
 * A suspected outage (see `OutageGate`): calls timed out, and the gate does not know yet whether the
 * backend is silent or merely slow. The records that timed out wait for `verdict` (true: an outage).
 * After `graceMs` with no answer from the backend, `check` runs (the probe); an answer first, a
 * close of the gate or its stop settle it sooner.
 */
export class Suspicion {
  readonly verdict: Promise<boolean>;
  #resolve!: (outage: boolean) => void;
  readonly #abort = new AbortController();
  #timer: NodeJS.Timeout | undefined;

  constructor(graceMs: number, check: (suspicion: Suspicion) => void) {
    this.verdict = new Promise<boolean>((resolve) => (this.#resolve = resolve));
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      check(this);
    }, graceMs);
  }

  /** Aborted once settled: cancels the probe call. */
  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  /** Gives the verdict (the first one counts). */
  settle(outage: boolean): void {
    if (this.#abort.signal.aborted) return;
    clearTimeout(this.#timer);
    this.#abort.abort();
    this.#resolve(outage);
  }
}

/**
 * grpc-js's details of a call that timed out before it was sent: no connection (and so no LB pick),
 * or no name resolution, for its whole deadline. Such a call never reached the server.
 */
export const NEVER_SENT = /Waiting for LB pick|waiting for name resolution/;

/** `Deadline exceeded after 5.001s` of grpc-js's `Deadline exceeded after 5.001s,LB pick: 0.001s,remote_addr=...`. */
export function firstPart(details: string): string {
  return details.split(',')[0]!.trim();
}
