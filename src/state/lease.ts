import {randomBytes} from 'node:crypto';
import {hostname} from 'node:os';
import {getErrorMessage, IoError} from '../errors.js';
import {isFileLocked} from '../util/file-lock.js';
import type {Logger} from '../util/log.js';
import {LEASE_MS, type StateStore} from './store.js';

/**
 * Who owns a run. A process that runs a run holds a lease on it in the state database: its owner
 * id (random per process, not a hostname and a pid, which a new pod or a restarted container
 * reuses or changes) and a heartbeat it renews every `HEARTBEAT_MS`. A run whose lease ran out
 * (`LEASE_MS`) is interrupted, whoever finds it; one whose files are no longer locked is too, at
 * once (its process died: the kernel dropped the lock).
 */

/** How often a running run renews its lease. */
export const HEARTBEAT_MS = 2000;

/** This process's owner id: readable (host, pid) and unique (random). */
export const OWNER_ID = `${hostname()}/${process.pid}/${randomBytes(4).toString('hex')}`;

/**
 * Marks the runs whose owner is gone as interrupted (lease run out, or files no longer locked),
 * but `except` (a run about to be claimed, which is left as it is should the claim be refused).
 */
export function reclaimDeadRuns(store: StateStore, now = Date.now(), except?: string): number {
  return store.markInterrupted(now, (run) => run.runId !== except && run.output !== undefined && !isFileLocked(run.output), except);
}

/** The runs recorded as running whose owner is gone (lease run out, or files no longer locked), found without a write. */
export function deadRunIds(store: StateStore, now = Date.now()): string[] {
  return store
    .listRunning()
    .filter((run) => run.heartbeatAt < now - LEASE_MS || (run.output !== undefined && !isFileLocked(run.output)))
    .map((run) => run.runId);
}

/** Renews a run's lease on a timer; a lock on the database only delays a renewal. */
export class Lease {
  readonly #store: StateStore;
  readonly #runId: string;
  readonly #owner: string;
  readonly #log: Logger | undefined;
  readonly #now: () => number;
  #timer: NodeJS.Timeout | undefined;

  constructor(store: StateStore, runId: string, options: {owner?: string; logger?: Logger | undefined; now?: () => number} = {}) {
    this.#store = store;
    this.#runId = runId;
    this.#owner = options.owner ?? OWNER_ID;
    this.#log = options.logger;
    this.#now = options.now ?? Date.now;
  }

  start(intervalMs = HEARTBEAT_MS): this {
    this.#timer ??= setInterval(() => this.renew(), intervalMs);
    this.#timer.unref();
    return this;
  }

  /** Renews now; a busy database is skipped (the lease is far longer than a beat). */
  renew(): void {
    try {
      if (!this.#store.renewLease(this.#runId, this.#owner, this.#now())) {
        this.#log?.warn(
          {runId: this.#runId, event: 'state:lease-lost'},
          `run ${this.#runId} is no longer owned by this process in ${this.#store.path}`,
        );
      }
    } catch (error) {
      if (!isBusy(error))
        this.#log?.warn(
          {runId: this.#runId, event: 'state:write-failed', error: getErrorMessage(error)},
          `could not renew the lease of run ${this.#runId}: ${getErrorMessage(error)}`,
        );
    }
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

/** Whether a database error is another process holding the lock (try again later), not a fault. */
export function isBusy(error: unknown): boolean {
  const code = (error as {code?: unknown} | undefined)?.code;
  return typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'));
}

/** Whether a database error is an I/O fault of the disk under it (full, read-only, broken). */
export function isStateIoError(error: unknown): boolean {
  const code = (error as {code?: unknown} | undefined)?.code;
  return typeof code === 'string' && /^SQLITE_(FULL|IOERR|READONLY|CANTOPEN|CORRUPT|NOTADB|PERM)/.test(code);
}

/** Longest a write that must land is retried while the database stays locked. */
export const MAX_BUSY_RETRY_MS = 120_000;

/**
 * Runs a state write, retrying while another process holds the database (SQLITE_BUSY), with
 * backoff on timers, so the event loop keeps turning. An I/O fault rejects at once as `IoError`.
 */
export async function retryBusy<T>(
  store: StateStore,
  fn: () => T,
  options: {maxMs?: number; onWait?: (waitedMs: number) => void} = {},
): Promise<T> {
  const started = Date.now();
  let delay = 10;
  let warned = false;
  for (;;) {
    try {
      return fn();
    } catch (error) {
      if (isStateIoError(error)) throw new IoError(`state database ${store.path}`, error);
      if (!isBusy(error) || Date.now() - started > (options.maxMs ?? MAX_BUSY_RETRY_MS)) throw error;
      if (!warned && Date.now() - started > 1000) {
        warned = true;
        options.onWait?.(Date.now() - started);
      }
    }
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 500);
  }
}

export {LEASE_MS};
