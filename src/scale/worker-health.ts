import type {Logger} from '../util/log.js';

/** The first pause of a worker that cannot reach a run's backend; doubled at each pause in a row. */
const FIRST_PAUSE_MS = 2000;
/** The longest pause: a worker whose backend comes back takes chunks again within this long. */
const MAX_PAUSE_MS = 60_000;

/**
 * A worker's health as far as its runs' backends go. A worker that cannot reach a backend (its own
 * network, its DNS, its proxy) hands the chunks of that run back, then takes no chunk for a while
 * (2 s, doubled each time in a row, at most 60 s): the healthy workers take them meanwhile. It
 * takes chunks again after the pause, and the pauses start over at its next chunk with an answer.
 */
export class WorkerHealth {
  readonly #worker: {pause(doNotWaitActive?: boolean): Promise<void>; resume(): Promise<void>};
  readonly #log: Logger | undefined;
  #pauseMs = FIRST_PAUSE_MS;
  #timer: NodeJS.Timeout | undefined;
  /** Since when this worker cannot reach a backend (one log line per such fault), if so. */
  #downSince: number | undefined;
  #closed = false;

  constructor(worker: {pause(doNotWaitActive?: boolean): Promise<void>; resume(): Promise<void>}, log?: Logger) {
    this.#worker = worker;
    this.#log = log;
  }

  /** Whether this worker takes chunks now. */
  get taking(): boolean {
    return this.#timer === undefined;
  }

  /** A backend is unreachable from here: no chunk taken for the pause (once per fault, however many chunks report it). */
  down(run: string, target: string, reason: string, chunks: number): void {
    if (this.#closed || this.#timer) return;
    if (this.#downSince === undefined) {
      this.#downSince = Date.now();
      this.#log?.warn(
        {event: 'worker:backend-down', run, target, reason, chunks, pauseMs: this.#pauseMs},
        `cannot reach ${target} (run ${run}): ${reason}; its ${chunks} chunk(s) here go back to the queue for other workers, and this worker takes none for ${this.#pauseMs} ms (then tries again, waiting up to ${MAX_PAUSE_MS} ms between tries)`,
      );
    } else
      this.#log?.debug(
        {event: 'worker:backend-still-down', run, target, reason, chunks, pauseMs: this.#pauseMs},
        `still cannot reach ${target}: ${chunks} chunk(s) handed back, none taken for ${this.#pauseMs} ms`,
      );
    this.#worker.pause(true).catch(() => undefined);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (!this.#closed) this.#worker.resume().catch(() => undefined);
    }, this.#pauseMs);
    this.#timer.unref();
    this.#pauseMs = Math.min(MAX_PAUSE_MS, this.#pauseMs * 2);
  }

  /** A chunk got answers from its backend: the fault, if any, is over. */
  up(): void {
    this.#pauseMs = FIRST_PAUSE_MS;
    if (this.#downSince === undefined) return;
    const downMs = Date.now() - this.#downSince;
    this.#downSince = undefined;
    this.#log?.info({event: 'worker:backend-up', downMs}, `backend reachable again from this worker after ${downMs} ms`);
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
