import {getErrorMessage, InternalError, IoError} from '../errors.js';
import type {Logger} from '../util/log.js';
import type {Checkpoint} from '../engine/run.js';
import {isBusy, isStateIoError, Lease, OWNER_ID, retryBusy} from './lease.js';
import type {InputRead} from '../io/input-digest.js';
import {resolveStatePath, StateStore, type ResumeInfo, type RunTrigger} from './store.js';

/**
 * Records runs in the state database for their RunLifecycle, and holds their lease.
 * With `--state` or `GRPC_BATCH_STATE` a database that cannot be opened is an error (exit 2,
 * nothing sent); at the default path it is only a warning, so a one-off run never fails for want of
 * a writable folder. Once open, a database that fails (full disk, read-only, I/O error) stops the
 * run (`IoError`); one that another process holds locked only delays checkpoints: they are skipped,
 * and the writes that must land (start, claim, end) are retried off the event loop.
 */
export class RunRecorder {
  readonly #store: StateStore | undefined;
  readonly #log: Logger | undefined;
  readonly #ownsStore: boolean;
  readonly #now: () => number;
  #lease: Lease | undefined;

  private constructor(store: StateStore | undefined, log: Logger | undefined, ownsStore = true, now: () => number = Date.now) {
    this.#store = store;
    this.#log = log;
    this.#ownsStore = ownsStore;
    this.#now = now;
  }

  /** A recorder for one run on a store someone else opened and closes (the daemon's). */
  static using(store: StateStore | undefined, log?: Logger, now: () => number = Date.now): RunRecorder {
    return new RunRecorder(store, log, false, now);
  }

  /** `required`: fail (exit 2) when the database cannot be opened, even at the default path. */
  static open(flag: string | undefined, log?: Logger, options: {required?: boolean} = {}): RunRecorder {
    const state = resolveStatePath(flag);
    try {
      return new RunRecorder(StateStore.open(state.path), log);
    } catch (error) {
      if (state.explicit || options.required) throw error;
      log?.warn({event: 'state:unavailable', state: state.path}, `the run is not recorded in history: ${getErrorMessage(error)}`);
      return new RunRecorder(undefined, log);
    }
  }

  /** The store, when one could be opened (`--resume` needs it). */
  get store(): StateStore | undefined {
    return this.#store;
  }

  /** Records a new run, owned by this process, and starts renewing its lease. */
  async started(
    runId: string,
    job: string,
    resume?: ResumeInfo,
    at = this.#now(),
    how: {trigger?: RunTrigger; scheduledAt?: number | undefined} = {},
  ): Promise<void> {
    const store = this.#store;
    if (!store) return;
    await this.#mustLand(() =>
      store.startRun({runId, job, trigger: how.trigger ?? 'manual', scheduledAt: how.scheduledAt, startedAt: at, owner: OWNER_ID, resume}),
    );
    this.#lease = new Lease(store, runId, {logger: this.#log, now: this.#now}).start();
  }

  /**
   * Claims a stored run for this process (a resume), with its files locked by the caller. False
   * when another process got it first.
   */
  async claimed(runId: string, at = this.#now()): Promise<boolean> {
    const store = this.#store;
    if (!store) return false;
    const claimed = await this.#mustLand(() => store.claimRun(runId, OWNER_ID, {now: at, ownerGone: true}));
    if (claimed) this.#lease = new Lease(store, runId, {logger: this.#log, now: this.#now}).start();
    return claimed;
  }

  /** Stores a checkpoint now, or skips it while another process holds the database. Throws `IoError` on a disk fault. */
  checkpoint(runId: string, checkpoint: Checkpoint): void {
    const store = this.#store;
    if (!store) return;
    try {
      store.saveCheckpoint(runId, checkpoint, this.#now());
      this.#lease?.renew();
    } catch (error) {
      if (isBusy(error))
        return void this.#log?.debug({event: 'state:busy', runId}, 'the state database is locked by another process; checkpoint skipped');
      if (isStateIoError(error)) throw new IoError(`state database ${store.path}`, error);
      this.#log?.warn(
        {event: 'state:write-failed', error: getErrorMessage(error)},
        `could not record the checkpoint: ${getErrorMessage(error)}`,
      );
    }
  }

  /**
   * Records how much of the input the run has read and its hash, before those records are sent:
   * retried while the database is locked (the run waits, its calls in flight go on). Throws `IoError` on a disk fault.
   */
  async inputRead(runId: string, read: InputRead): Promise<void> {
    const store = this.#store;
    if (!store) return;
    await this.#mustLand(() => store.saveInputRead(runId, read));
  }

  close(): void {
    this.#lease?.stop();
    if (this.#ownsStore) this.#store?.close();
  }

  /** Records how the run ended (retried while the database is locked); RunLifecycle#end says with what. True once it is recorded. */
  ended(runId: string, outcome: Parameters<StateStore['finishRun']>[1]): Promise<boolean> {
    return this.#end(runId, outcome);
  }

  async #end(runId: string, outcome: Parameters<StateStore['finishRun']>[1]): Promise<boolean> {
    const store = this.#store;
    if (!store) return false;
    this.#lease?.stop();
    try {
      if (await this.#mustLand(() => store.finishRun(runId, outcome, OWNER_ID))) return true;
      this.#log?.warn({event: 'state:lease-lost', runId}, `run ${runId} was taken over by another process; its end is not recorded here`);
    } catch (error) {
      this.#log?.warn(
        {event: 'state:write-failed', error: getErrorMessage(error)},
        `could not record the end of the run in history: ${getErrorMessage(error)}`,
      );
    }
    return false;
  }

  /** A write retried while the database is locked; a disk fault is an `IoError`. */
  #mustLand<T>(fn: () => T): Promise<T> {
    const store = this.#store!;
    return retryBusy(store, fn, {
      onWait: (ms) =>
        this.#log?.warn(
          {event: 'state:busy', state: store.path},
          `the state database is locked by another process; waited ${ms} ms, still trying`,
        ),
    }).catch((error: unknown) => {
      throw error instanceof IoError ? error : new InternalError(`state database ${store.path}: ${getErrorMessage(error)}`, {cause: error});
    });
  }
}
