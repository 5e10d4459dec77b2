import {getErrorMessage, IoError} from '../errors.js';
import type {LoadedJob} from '../config/load.js';
import {asRecorded, findRunToResume} from '../state/resumable.js';
import {RunRecorder} from '../state/run-recorder.js';
import type {RecordedSpec, ResumeInfo, RunTrigger} from '../state/store.js';
import {RunLifecycle, type EndStatus} from './lifecycle.js';
import {newRunId, runJob, type RunOptions} from '../engine/run.js';
import type {RunSummary} from '../engine/stats.js';

/*
 * The run facade: every run, whoever starts it (`grpc-batch run`, the daemon, a distributed run's
 * coordinator, the demo, a program importing grpc-batch), goes lock → record → engine → end →
 * release here. What the CLI adds is only flags, console, signals and the summary it prints.
 */

/** What sends a run's records: this machine (`runJob`: one thread or worker threads), or a distributed run's coordinator. */
export interface RunEngine {
  /**
   * Takes what the engine must hold for the run, after its files are locked and before it is
   * recorded (a distributed run's lease in Redis): a second coordinator of a live run is refused
   * here, with nothing recorded.
   */
  claim?(runId: string): Promise<void>;
  /** Sends the records. Rejects only on I/O errors and bugs (with the summary so far on an `InternalError`). */
  run(job: LoadedJob, options: RunOptions): Promise<RunSummary>;
  /** Lets go of what `claim` took. Called once the run is over or could not start; idempotent. */
  release?(): Promise<void>;
}

/** This machine's engine. */
export const LOCAL_ENGINE: RunEngine = {run: runJob};

/** What the facade gives the engine itself, from the run's lifecycle (and the engine, its executor). */
type LifecycleOptions = 'runId' | 'filesLock' | 'resume' | 'onCheckpoint' | 'onInputRead' | 'executor';

export interface ExecuteOptions extends Omit<RunOptions, LifecycleOptions> {
  /** @default LOCAL_ENGINE */
  readonly engine?: RunEngine | undefined;
  /** What started the run, as recorded. @default 'manual' */
  readonly trigger?: RunTrigger | undefined;
  /** The tick a scheduled run was fired for, as recorded. */
  readonly scheduledAt?: number | undefined;
  /**
   * Called as the engine settles, before the end is recorded: a status or reason to record instead of
   * what the summary says (the daemon records a run its shutdown cancelled as `interrupted`).
   */
  readonly endAs?:
    | ((settled: {readonly summary: RunSummary | undefined; readonly error: unknown}) => {
        readonly status?: EndStatus | undefined;
        readonly reason?: string | undefined;
      })
    | undefined;
}

/** How a run ended, once its end is recorded and its files, lease and state database are let go. */
export interface FinishedRun {
  readonly runId: string;
  /** The job as it ran (a resume runs as its run started: target, concurrency... as recorded). */
  readonly job: LoadedJob;
  /** Where the run reads and writes and how it started, as recorded. */
  readonly resumeInfo: ResumeInfo;
  /**
   * False when it never started: the engine's claim or the record of its start was refused
   * (another process resumes it, a second coordinator, a state database fault). Nothing was recorded then.
   */
  readonly started: boolean;
  /** True when the run threw (`error`) instead of returning its summary. */
  readonly failed: boolean;
  readonly error: unknown;
  /** The summary, or the summary so far that an `InternalError` carried. */
  readonly summary: RunSummary | undefined;
  /** The status recorded (or that would have been, without a state database). */
  readonly status: EndStatus;
  readonly reason: string | undefined;
  /** Whether the state database took the end. */
  readonly recorded: boolean;
}

/**
 * Runs a run whose files are locked to its end: takes the engine's claim, records the run as
 * started (or claims it to resume), sends its records, records how it ended, then lets go of its
 * files, lease and state database, whatever happens. Resolves with how it ended; never rejects for
 * what the run met (an I/O error, a refused start): that is in the result.
 */
export async function executeRun(lifecycle: RunLifecycle, options: ExecuteOptions = {}): Promise<FinishedRun> {
  const {engine = LOCAL_ENGINE, trigger, scheduledAt, endAs, ...runOptions} = options;
  const {runId, job, resumeInfo} = lifecycle;
  try {
    try {
      await engine.claim?.(runId);
      await lifecycle.begin({...(trigger ? {trigger} : {}), scheduledAt});
    } catch (error) {
      const status = error instanceof IoError ? 'interrupted' : 'error';
      return {
        runId,
        job,
        resumeInfo,
        started: false,
        failed: true,
        error,
        summary: undefined,
        status,
        reason: getErrorMessage(error),
        recorded: false,
      };
    }
    let summary: RunSummary | undefined;
    let error: unknown;
    let failed = false;
    try {
      summary = await engine.run(job, {...runOptions, ...lifecycle.runOptions()});
    } catch (thrown) {
      failed = true;
      error = thrown;
    }
    const ended = await lifecycle.end({summary, error, ...endAs?.({summary, error})});
    return {runId, job, resumeInfo, started: true, failed, error, ...ended};
  } finally {
    await engine.release?.().catch(() => undefined);
    lifecycle.close();
  }
}

export interface StartRunOptions extends ExecuteOptions {
  /** The id of a new run. @default a new id: UTC time plus 6 random hex digits */
  readonly runId?: string | undefined;
  /**
   * Continue an interrupted, cancelled or aborted run: `true` for the job's newest one, or its id.
   * Records with a result are not sent again, and the run goes on as it started (files, target,
   * concurrency... as recorded, except the `given` ones). Refused (a `UsageError`, nothing sent)
   * when the run is still running elsewhere, finished, or its input changed. @default false
   */
  readonly resume?: boolean | string | undefined;
  /**
   * The state database the run is recorded in, where `history` and `--resume` find it; `false`
   * for none. A path given (here or by `GRPC_BATCH_STATE`) that cannot be opened is an error; the
   * default path only warns. @default `GRPC_BATCH_STATE`, else ./.grpc-batch/state.db
   */
  readonly state?: string | false | undefined;
  /** On a resume, the recorded settings that the job given now overrides (the CLI's flags). @default none */
  readonly given?: ReadonlySet<keyof RecordedSpec> | undefined;
  /**
   * Called before the run's files are locked, with the job as it will run and, on a resume, the run
   * found and the job as given: the CLI refuses the flags a resume cannot honour and checks the
   * target (`--preflight`) here. A throw stops the run with nothing recorded.
   */
  readonly beforeLock?:
    | ((
        job: LoadedJob,
        resumed: {readonly runId: string; readonly info: ResumeInfo; readonly given: LoadedJob} | undefined,
      ) => void | Promise<void>)
    | undefined;
}

/** How a run ended (see `FinishedRun`), and whether a state database recorded it. */
export interface StartedRun extends FinishedRun {
  /** Whether a state database records the run (`history` shows it, `resume` can continue it). */
  readonly inState: boolean;
}

/**
 * Opens the state database, finds the run to resume, locks the run's files and runs it to its end
 * (`executeRun`). Rejects when the run cannot be set up (a resume refused, files another run
 * writes, `beforeLock` threw): then nothing is recorded or sent.
 */
export async function startRun(job: LoadedJob, options: StartRunOptions = {}): Promise<StartedRun> {
  const {runId: wanted, resume, state, given, beforeLock, ...execute} = options;
  const recorder =
    state === false ? RunRecorder.using(undefined, options.logger) : RunRecorder.open(state, options.logger, {required: Boolean(resume)});
  let lifecycle: RunLifecycle;
  try {
    let runId = wanted ?? newRunId();
    let resumed: {runId: string; info: ResumeInfo; given: LoadedJob} | undefined;
    if (resume) {
      const found = findRunToResume(recorder.store!, job, typeof resume === 'string' ? resume : wanted, given);
      runId = found.runId;
      resumed = {runId, info: found.info, given: job};
      job = asRecorded(job, found.info, given);
    }
    await beforeLock?.(job, resumed);
    // The files checked and locked first, then the run claimed (one write that checks its status), then sent.
    lifecycle = RunLifecycle.lock(job, runId, recorder, {resume: resumed !== undefined});
  } catch (error) {
    recorder.close();
    throw error;
  }
  return {...(await executeRun(lifecycle, execute)), inState: recorder.store !== undefined};
}

/**
 * Runs a job as `grpc-batch run` does, from code: the run is recorded in the state database
 * (`history` lists it), holds its lease and its files' lock while it runs (a second run of it is
 * refused), stops on `signal` (calls in flight finish; `cancelSignal` cuts them) leaving a run that
 * `resume` continues, and its end is recorded. Resolves with the summary; rejects as `runJob` does
 * (a `UsageError` when the run cannot start, an `InternalError` with the summary so far).
 */
export async function run(job: LoadedJob, options: StartRunOptions = {}): Promise<RunSummary> {
  const finished = await startRun(job, options);
  if (finished.failed) throw finished.error;
  return finished.summary!;
}
