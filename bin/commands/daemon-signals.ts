import {formatIssue, getErrorMessage, ValidationError} from '../../src/errors.js';
import type {Logger} from '../../src/util/log.js';
import {loadJobs, type LoadJobsOptions} from '../../src/scheduler/job-files.js';
import type {Scheduler} from '../../src/scheduler/scheduler.js';
import {takeHeldSignals} from '../startup-signals.js';

/**
 * The daemon's signals, wired before anything else so none is ever fatal: the first SIGTERM/SIGINT
 * closes gracefully, a second cancels; SIGHUP reloads the job files. A SIGHUP that comes while the
 * daemon starts, or while a reload is under way, is queued: one more reload runs when the
 * current step ends (several queued SIGHUPs make one reload: it reads the files as they are then).
 */
export class DaemonSignals {
  readonly #paths: readonly string[];
  readonly #graceMs: number;
  readonly #log: Logger;
  readonly #loadOptions: LoadJobsOptions;
  #scheduler: Scheduler | undefined;
  #stopping: NodeJS.Signals | undefined;
  #reloading = false;
  #reloadQueued = false;
  #settle: {resolve: () => void; reject: (error: unknown) => void} | undefined;
  #stopped: Promise<void> | undefined;
  readonly #onStop = (signal: NodeJS.Signals) => this.#stop(signal);
  readonly #onReload = () => this.#reload();

  /** `loadOptions`: how a reload loads the job files (as the daemon's start did). */
  constructor(paths: readonly string[], graceMs: number, log: Logger, loadOptions: LoadJobsOptions = {}) {
    this.#paths = paths;
    this.#loadOptions = loadOptions;
    this.#graceMs = graceMs;
    this.#log = log;
    process.on('SIGTERM', this.#onStop);
    process.on('SIGINT', this.#onStop);
    process.on('SIGHUP', this.#onReload);
    for (const signal of takeHeldSignals()) signal === 'SIGHUP' ? this.#onReload() : this.#onStop(signal);
  }

  /** A SIGTERM/SIGINT came (maybe during start-up). */
  get isStopping(): boolean {
    return this.#stopping !== undefined;
  }

  /** Hands the started scheduler over; resolves once it closed after a stop signal. Runs what was queued meanwhile. */
  run(scheduler: Scheduler): Promise<void> {
    this.#scheduler = scheduler;
    this.#stopped ??= new Promise<void>((resolve, reject) => (this.#settle = {resolve, reject}));
    if (this.#stopping) this.#close();
    else if (this.#reloadQueued) {
      this.#reloadQueued = false;
      this.#log.info(
        {event: 'daemon:reloading', signal: 'SIGHUP', queued: true},
        'SIGHUP received during start-up: reloading the job files now',
      );
      this.#reload();
    }
    return this.#stopped;
  }

  dispose(): void {
    process.off('SIGTERM', this.#onStop);
    process.off('SIGINT', this.#onStop);
    process.off('SIGHUP', this.#onReload);
  }

  #stop(signal: NodeJS.Signals): void {
    if (this.#stopping) {
      this.#log.warn({event: 'daemon:cancelling', signal}, `${signal} again: cancelling running jobs now`);
      this.#scheduler?.cancelRunning(`${signal} received twice`);
      return;
    }
    this.#stopping = signal;
    this.#log.info(
      {event: 'daemon:stopping', signal, graceMs: this.#graceMs},
      `${signal}: no new runs; running jobs have ${this.#graceMs} ms to finish (send ${signal} again to cancel them now)`,
    );
    if (this.#scheduler && this.#settle) this.#close();
  }

  #close(): void {
    const settle = this.#settle!;
    this.#scheduler!.close(this.#graceMs).then(
      () => settle.resolve(),
      (error: unknown) => settle.reject(error),
    );
  }

  #reload(): void {
    if (this.#stopping) return;
    if (!this.#scheduler || this.#reloading) {
      if (!this.#reloadQueued) {
        this.#log.info(
          {event: 'daemon:reload-queued', signal: 'SIGHUP'},
          this.#scheduler
            ? 'SIGHUP during a reload: the job files are read again when it ends'
            : 'SIGHUP during start-up: the job files are read again once the daemon is up',
        );
      }
      this.#reloadQueued = true;
      return;
    }
    this.#reloading = true;
    this.#log.info({event: 'daemon:reloading', signal: 'SIGHUP'}, 'SIGHUP: reloading the job files');
    loadJobs(this.#paths, this.#loadOptions)
      .then(
        ({jobs, warnings}) => {
          for (const warning of warnings)
            this.#log.warn({event: 'job:warning', file: warning.file, key: warning.path}, formatIssue(warning));
          if (!this.#stopping) this.#scheduler!.reload(jobs);
        },
        (error: unknown) => {
          const issues = error instanceof ValidationError ? error.issues.map(formatIssue) : [getErrorMessage(error)];
          this.#log.error(
            {event: 'daemon:reload-failed', issues},
            `reload failed; the jobs loaded before keep running:\n  ${issues.join('\n  ')}`,
          );
        },
      )
      .finally(() => {
        this.#reloading = false;
        if (this.#reloadQueued && !this.#stopping) {
          this.#reloadQueued = false;
          this.#reload();
        }
      });
  }
}
