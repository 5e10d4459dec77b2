import {getErrorMessage} from '../errors.js';
import type {RunSummary} from '../jobs/summary.js';
import type {Logger} from '../log.js';
import type {Checkpoint} from '../jobs/checkpoint.js';
import {resolveStatePath, StateStore, summaryOutcome, type ResumeInfo} from './store.js';

/**
 * Records the runs of `grpc-batch run` in the state database, as manual runs. With `--state` or
 * `GRPC_BATCH_STATE` a database that cannot be opened is an error (exit 2, nothing sent); at the
 * default path it is only a warning, so a one-off run never fails for want of a writable folder.
 */
export class RunRecorder {
  readonly #store: StateStore | undefined;
  readonly #log: Logger | undefined;

  private constructor(store: StateStore | undefined, log: Logger | undefined) {
    this.#store = store;
    this.#log = log;
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

  started(runId: string, job: string, resume?: ResumeInfo, at = Date.now()): void {
    this.#write(() => {
      this.#store?.startRun({runId, job, trigger: 'manual', startedAt: at});
      if (resume) this.#store?.saveResumeInfo(runId, resume, at);
    });
  }

  /** A stored run is running again (a resume). */
  restarted(runId: string, at = Date.now()): void {
    this.#write(() => this.#store?.restartRun(runId, at));
  }

  checkpoint(runId: string, checkpoint: Checkpoint): void {
    this.#write(() => this.#store?.saveCheckpoint(runId, checkpoint));
  }

  finished(runId: string, summary: RunSummary, at = Date.now()): void {
    this.#write(() => this.#store?.finishRun(runId, {status: summary.status, endedAt: at, ...summaryOutcome(summary)}));
  }

  failed(runId: string, error: unknown, at = Date.now()): void {
    this.#write(() => this.#store?.finishRun(runId, {status: 'error', endedAt: at, reason: getErrorMessage(error)}));
  }

  close(): void {
    this.#store?.close();
  }

  #write(fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.#log?.warn({event: 'state:write-failed', error: getErrorMessage(error)}, `could not record the run in history: ${getErrorMessage(error)}`);
    }
  }
}
