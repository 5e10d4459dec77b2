import {getErrorMessage} from '../errors.js';
import type {Logger} from '../util/log.js';
import {isBusy, retryBusy} from '../state/lease.js';
import type {StateStore} from '../state/store.js';

/**
 * The scheduler's steps on its state database, so that a locked or broken state file is logged and
 * the loop goes on: `try` runs a step and logs its failure; `write` runs a write now, or, while
 * another process holds the database, again on timers (never blocking the loop).
 */
export class StateSteps {
  readonly #store: StateStore | undefined;
  readonly #log: Logger | undefined;

  constructor(store: StateStore | undefined, log: Logger | undefined) {
    this.#store = store;
    this.#log = log;
  }

  write(what: string, fn: () => unknown): void {
    try {
      fn();
    } catch (error) {
      if (!isBusy(error) || !this.#store) return this.#failed(what, error);
      retryBusy(this.#store, fn).catch((late: unknown) => this.#failed(what, late));
    }
  }

  try<T>(what: string, fn: () => T): T | undefined {
    try {
      return fn();
    } catch (error) {
      this.#failed(what, error);
      return undefined;
    }
  }

  #failed(what: string, error: unknown): void {
    this.#log?.error({event: 'scheduler:error', step: what, error: getErrorMessage(error)}, `${what}: ${getErrorMessage(error)}`);
  }
}
