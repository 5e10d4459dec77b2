import {FencedError, getErrorMessage, InternalError, IoError, UsageError} from '../errors.js';
import {RunFilesLock} from '../util/file-lock.js';
import type {LoadedJob} from '../config/load.js';
import {checkRunFiles} from '../config/outputs.js';
import {runFiles} from '../io/results.js';
import {resumeInfoFor} from '../state/resumable.js';
import type {RunRecorder} from '../state/run-recorder.js';
import {summaryOutcome, type ResumeInfo, type RunStatus, type RunTrigger} from '../state/store.js';
import {stopReasonOf} from '../stop-reason.js';
import type {RunOptions} from '../engine/run.js';
import type {RunSummary} from '../engine/stats.js';

/** The statuses a run can end with. */
export type EndStatus = Exclude<RunStatus, 'running' | 'skipped'>;

/** How a run ended, as its lifecycle records it. */
export interface RunEnd {
  /** The run's summary, when it returned one. */
  readonly summary?: RunSummary | undefined;
  /** What it threw instead: an `IoError` (full disk...) is recorded `interrupted`, anything else `error`. */
  readonly error?: unknown;
  /** Recorded instead of the summary's status (the daemon's shutdown turns `cancelled` into `interrupted`). */
  readonly status?: EndStatus | undefined;
  /** Recorded when the summary and the error give none (`replaced by a newer run`). */
  readonly reason?: string | undefined;
}

/**
 * One run's life on disk and in the state database, the same for `grpc-batch run` and the daemon:
 * its results and failures files checked and locked (`lock`), the run recorded as started or, to
 * resume, claimed from the process that left it (`begin`), its checkpoints, how it ended (`end`),
 * and its files and lease let go (`close`). What runs in between (one thread, worker threads, a
 * distributed run) is the caller's.
 */
export class RunLifecycle {
  readonly runId: string;
  readonly resume: boolean;
  readonly filesLock: RunFilesLock;
  /** Where the run reads and writes and how it started, as `begin` records it (read at `lock`). */
  readonly resumeInfo: ResumeInfo;
  /** The job as it runs. */
  readonly job: LoadedJob;
  readonly #recorder: RunRecorder;
  readonly #now: () => number;
  #closed = false;

  private constructor(job: LoadedJob, runId: string, resume: boolean, recorder: RunRecorder, filesLock: RunFilesLock, now: () => number) {
    this.job = job;
    this.runId = runId;
    this.resume = resume;
    this.#recorder = recorder;
    this.filesLock = filesLock;
    this.#now = now;
    this.resumeInfo = resumeInfoFor(job, runId);
  }

  /**
   * Checks that the run may write its files (a fixed path another run holds, a file that would be
   * overwritten) and locks them. Throws a `UsageError` naming the file; then nothing is recorded.
   * The recorder is the caller's to close when this throws, the lifecycle's once it returns.
   */
  static lock(job: LoadedJob, runId: string, recorder: RunRecorder, options: {resume: boolean; now?: () => number}): RunLifecycle {
    checkRunFiles(job.spec, runId, {resume: options.resume});
    const filesLock = RunFilesLock.acquire(runFiles(job.spec, runId));
    return new RunLifecycle(job, runId, options.resume, recorder, filesLock, options.now ?? Date.now);
  }

  /** Records the run as started by this process (with how to resume it), or claims it to resume. Throws when another process claimed it first. */
  async begin(how: {trigger?: RunTrigger; scheduledAt?: number | undefined} = {}): Promise<void> {
    if (this.resume) {
      if (!(await this.#recorder.claimed(this.runId, this.#now()))) {
        throw new UsageError(`run ${this.runId} is being resumed by another process; see grpc-batch history`);
      }
      return;
    }
    await this.#recorder.started(this.runId, this.job.spec.name, this.resumeInfo, this.#now(), how);
  }

  /** What every run is given by its lifecycle: its id, its locked files, whether it resumes, where its checkpoints and input hash go. */
  runOptions(): Pick<RunOptions, 'runId' | 'filesLock' | 'resume' | 'onCheckpoint' | 'onInputRead'> {
    return {
      runId: this.runId,
      filesLock: this.filesLock,
      resume: this.resume,
      onCheckpoint: (checkpoint) => this.#recorder.checkpoint(this.runId, checkpoint),
      onInputRead: (read) => this.#recorder.inputRead(this.runId, read),
    };
  }

  /**
   * Records how the run ended. Returns what was recorded: the status, the reason, the summary (a
   * partial one for an I/O error), and whether the state database took it (`recorded`).
   */
  async end(end: RunEnd): Promise<{status: EndStatus; reason: string | undefined; summary: RunSummary | undefined; recorded: boolean}> {
    const {summary, error} = end;
    const partial = summary ?? (error instanceof InternalError ? (error.summary as RunSummary | undefined) : undefined);
    const status: EndStatus =
      end.status ?? (error instanceof IoError ? 'interrupted' : summary && error === undefined ? summary.status : 'error');
    const reason = error !== undefined ? getErrorMessage(error) : (end.reason ?? summary?.stopReason ?? summary?.abortReason);
    const stop = error !== undefined ? stopReasonOf(error) : undefined;
    // A distributed run taken over by another coordinator is the other's to record: nothing is written.
    if (error instanceof FencedError) return {status, reason, summary: partial, recorded: false};
    const recorded = await this.#recorder.ended(this.runId, {
      ...(partial ? summaryOutcome(partial) : {}),
      status,
      endedAt: this.#now(),
      reason,
      ...(stop ? {stop} : {}),
    });
    return {status, reason, summary: partial, recorded};
  }

  /** Lets go of the run's files and lease (and the recorder). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#recorder.close();
    this.filesLock.release();
  }
}
