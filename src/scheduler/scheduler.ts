import {EventEmitter} from 'node:events';
import {formatDuration} from '../util/duration.js';
import {getErrorMessage} from '../errors.js';
import type {LoadedJob} from '../config/load.js';
import {moduleResumeProblem} from '../io/record-identity.js';
import {newRunId, runJob} from '../engine/run.js';
import {executeRun, type FinishedRun} from '../runner/runner.js';
import {RunLifecycle} from '../runner/lifecycle.js';
import {asRecorded} from '../state/resumable.js';
import {reclaimDeadRuns} from '../state/lease.js';
import {RunRecorder} from '../state/run-recorder.js';
import type {ResumeInfo, RunTrigger} from '../state/store.js';
import {drainRuns} from './grace.js';
import {StateSteps} from './state-steps.js';
import {interruptedRunsToResume, type RunToResume} from './resume-interrupted.js';
import {decideOverlap} from './overlap.js';
import {systemClock} from './clock.js';
import {Timetable, type TimedEntry} from './timetable.js';
import type {JobRunner, ScheduledJobInfo, SchedulerEventName, SchedulerEvents, SchedulerOptions, TriggerResult} from './types.js';

export const DEFAULT_GRACE_MS = 30_000;
const DEFAULT_MAX_TIMER_MS = 30_000;
/** Runs kept per job in the state database: a job that runs every minute keeps about 16 hours. */
export const DEFAULT_KEEP_RUNS = 1000;

interface ActiveRun {
  readonly job: string;
  readonly runId: string;
  readonly trigger: RunTrigger;
  readonly scheduledAt: number | undefined;
  readonly stop: AbortController;
  readonly cancel: AbortController;
  /** Set when the scheduler cancelled the run (replace, end of grace): recorded as its reason. */
  cancelReason?: string;
  /** Cancelled because the scheduler stopped: recorded `interrupted`, so the next start resumes it. */
  cutByShutdown?: boolean;
  done: Promise<void>;
}

interface JobEntry extends TimedEntry {
  readonly runs: Map<string, ActiveRun>;
  /** The one run `overlap: queue` keeps waiting. */
  pending: {trigger: RunTrigger; scheduledAt: number | undefined} | undefined;
  /** Interrupted runs still to resume, oldest first, one after the other. */
  resumes?: RunToResume[];
  /** A run of this job ended interrupted while the daemon ran (an outage past maxOutage, a full disk): resumed at the job's next tick. */
  resumeAtNextTick?: boolean;
}

/**
 * Fires jobs on their cron schedules from one timer on an injectable clock, applies each job's
 * overlap policy, catches up a missed tick after a restart, records every run in the state store,
 * and closes gracefully. Events are typed (`SchedulerEvents`) and each is logged as one JSON line.
 */
export class Scheduler extends EventEmitter {
  readonly #clock;
  readonly #store;
  readonly #log;
  readonly #runner: JobRunner;
  readonly #progressIntervalMs;
  readonly #keepRuns;
  readonly #shared;
  readonly #state: StateSteps;
  readonly #entries = new Map<string, JobEntry>();
  readonly #active = new Set<ActiveRun>();
  readonly #timetable: Timetable<JobEntry>;
  #started = false;
  #isClosing = false;
  #closing: Promise<void> | undefined;

  constructor(jobs: readonly LoadedJob[], options: SchedulerOptions = {}) {
    super();
    this.#clock = options.clock ?? systemClock;
    this.#store = options.store;
    this.#log = options.logger;
    this.#runner = options.runner ?? runJob;
    this.#progressIntervalMs = options.progressIntervalMs ?? 1000;
    this.#keepRuns = options.keepRuns ?? DEFAULT_KEEP_RUNS;
    this.#shared = options.shared;
    this.#state = new StateSteps(options.store, options.logger);
    this.#timetable = new Timetable<JobEntry>({
      clock: this.#clock,
      store: this.#store,
      state: this.#state,
      log: this.#log,
      random: options.random ?? Math.random,
      maxTimerMs: Math.max(1, options.maxTimerMs ?? DEFAULT_MAX_TIMER_MS),
      emit: (event, payload, level, message) => this.#emit(event, payload, level, message),
      jobs: () => this.#entries,
      dispatch: (entry, trigger, scheduledAt) => void this.#dispatch(entry, trigger, scheduledAt),
      skip: (entry, trigger, scheduledAt, reason) => void this.#skip(entry, trigger, scheduledAt, reason),
    });
    if (!Number.isSafeInteger(this.#keepRuns) || this.#keepRuns < 0) {
      throw new TypeError(`Expected \`keepRuns\` to be an integer from 0 and up, got \`${this.#keepRuns}\` (${typeof this.#keepRuns})`);
    }
    for (const job of jobs)
      this.#entries.set(job.spec.name, {loaded: job, cron: undefined, nextFireAt: undefined, runs: new Map(), pending: undefined});
  }

  override on<E extends SchedulerEventName>(event: E, listener: (payload: SchedulerEvents[E]) => void): this {
    return super.on(event, listener);
  }

  override once<E extends SchedulerEventName>(event: E, listener: (payload: SchedulerEvents[E]) => void): this {
    return super.once(event, listener);
  }

  override off<E extends SchedulerEventName>(event: E, listener: (payload: SchedulerEvents[E]) => void): this {
    return super.off(event, listener);
  }

  /** Whether the loop is alive: started, not closing, and its timer fired when it should have. */
  get isAlive(): boolean {
    return this.#started && !this.#isClosing && this.#timetable.onTime;
  }

  /** Runs in progress, over every job. */
  get runningCount(): number {
    return this.#active.size;
  }

  jobs(): ScheduledJobInfo[] {
    return [...this.#entries.values()].map((e) => ({
      name: e.loaded.spec.name,
      file: e.loaded.spec.file,
      schedule: e.loaded.spec.schedule,
      nextFireAt: e.nextFireAt,
      running: e.runs.size,
      queued: e.pending !== undefined,
    }));
  }

  /** Starts firing: records runs a crash left `running` as interrupted, catches up, arms the timer. */
  start(): ScheduledJobInfo[] {
    if (this.#started || this.#isClosing) return this.jobs();
    this.#started = true;
    this.#state.try('state:recover', () => {
      const count = this.#store ? reclaimDeadRuns(this.#store, this.#clock.now()) : 0;
      if (count > 0)
        this.#log?.warn(
          {event: 'state:recovered', count},
          `${count} runs left running by a process that ended are recorded as interrupted`,
        );
    });
    for (const entry of this.#entries.values()) this.#resumeInterrupted(entry);
    for (const entry of this.#entries.values()) this.#timetable.plan(entry, true);
    this.#emit('scheduler:started', {jobs: this.jobs()}, 'info', `scheduler started with ${this.#entries.size} jobs`);
    this.#timetable.start();
    return this.jobs();
  }

  /** Runs a job now (a manual run), respecting its overlap policy. */
  trigger(name: string, trigger: RunTrigger = 'manual'): TriggerResult {
    const entry = this.#entries.get(name);
    if (!entry)
      return {outcome: 'unknown-job', reason: `no job named ${JSON.stringify(name)}; jobs: ${[...this.#entries.keys()].join(', ')}`};
    if (this.#isClosing) return {outcome: 'closing', reason: 'the scheduler is stopping'};
    return this.#dispatch(entry, trigger, undefined);
  }

  /**
   * Replaces the job set (SIGHUP): removed jobs stop firing, new ones are planned (with catch-up),
   * kept ones take their new definition for future runs. Runs in progress go on as they were.
   */
  reload(jobs: readonly LoadedJob[]): void {
    const names = new Set(jobs.map((j) => j.spec.name));
    const removed: string[] = [];
    const added: string[] = [];
    const kept: string[] = [];
    for (const [name, entry] of this.#entries) {
      if (names.has(name)) continue;
      removed.push(name);
      this.#entries.delete(name);
      if (entry.pending) this.#skip(entry, entry.pending.trigger, entry.pending.scheduledAt, 'its job was removed on reload');
      entry.pending = undefined;
    }
    for (const job of jobs) {
      const entry = this.#entries.get(job.spec.name);
      if (entry) {
        kept.push(job.spec.name);
        entry.loaded = job;
        if (this.#started) this.#timetable.plan(entry, false);
      } else {
        added.push(job.spec.name);
        const fresh: JobEntry = {loaded: job, cron: undefined, nextFireAt: undefined, runs: new Map(), pending: undefined};
        this.#entries.set(job.spec.name, fresh);
        if (this.#started) this.#timetable.plan(fresh, true);
      }
    }
    this.#emit(
      'jobs:reloaded',
      {added, removed, kept},
      'info',
      `jobs reloaded: ${added.length} added, ${removed.length} removed, ${kept.length} kept`,
    );
    this.#timetable.arm();
  }

  /**
   * Stops firing, lets running runs finish for up to `graceMs`, then cancels what is left (calls in
   * flight included), and resolves once every run is recorded. Idempotent.
   */
  close(graceMs = DEFAULT_GRACE_MS): Promise<void> {
    return (this.#closing ??= this.#drainThenCancel(graceMs));
  }

  /**
   * Runs a tick taken from the replicas' shared queue (its overlap policy was applied there) and
   * resolves once the run is recorded; 'closing' when this replica is stopping (the tick goes back).
   */
  async runShared(
    name: string,
    trigger: RunTrigger,
    scheduledAt: number | undefined,
    onStarted: (runId: string) => void,
  ): Promise<'ran' | 'closing'> {
    const entry = this.#entries.get(name);
    if (!entry) throw new Error(`no job named ${JSON.stringify(name)} on this replica; jobs: ${[...this.#entries.keys()].join(', ')}`);
    if (this.#isClosing) return 'closing';
    const result = this.#start(entry, trigger, scheduledAt);
    if (result.outcome !== 'started') return 'ran';
    onStarted(result.runId);
    await entry.runs.get(result.runId)?.done;
    return 'ran';
  }

  /** Records a tick that the shared queue dropped (overlap across replicas). */
  skipShared(name: string, trigger: RunTrigger, scheduledAt: number | undefined, reason: string): void {
    const entry = this.#entries.get(name);
    if (entry) this.#skip(entry, trigger, scheduledAt, reason);
  }

  /**
   * Cancels every running run now (a second SIGTERM during the grace period). While the scheduler
   * closes, the runs are cut by its shutdown, as at the end of the grace period: recorded
   * `interrupted`, and resumed at the next start.
   */
  cancelRunning(reason: string): void {
    for (const run of this.#active) {
      if (this.#isClosing) run.cutByShutdown = true;
      this.#cancelRun(run, reason);
    }
  }

  async #drainThenCancel(graceMs: number): Promise<void> {
    this.#isClosing = true;
    this.#state.try('timer', () => this.#timetable.stop());
    this.#state.try('queue', () => {
      for (const entry of this.#entries.values()) {
        if (entry.pending) this.#skip(entry, entry.pending.trigger, entry.pending.scheduledAt, 'the scheduler stopped while it was queued');
        entry.pending = undefined;
      }
    });
    const runs = [...this.#active];
    this.#emit(
      'scheduler:closing',
      {graceMs, running: runs.length},
      'info',
      `stopping: no new runs; waiting up to ${formatDuration(graceMs)} for ${runs.length} running`,
    );
    await drainRuns(runs, graceMs, this.#clock, (reason) => this.cancelRunning(reason));
    this.#emit('scheduler:closed', {}, 'info', 'scheduler stopped');
  }

  /** Applies the overlap policy and starts, queues or skips. */
  #dispatch(entry: JobEntry, trigger: RunTrigger, scheduledAt: number | undefined): TriggerResult {
    if (this.#isClosing) return this.#skip(entry, trigger, scheduledAt, 'the scheduler is stopping');
    if (this.#shared) {
      this.#shared.fire(entry.loaded.spec.name, trigger, scheduledAt, entry.loaded.spec.schedule?.overlap ?? 'skip');
      return {outcome: 'queued'};
    }
    const policy = entry.loaded.spec.schedule?.overlap ?? 'skip';
    if (entry.resumeAtNextTick && entry.runs.size === 0) {
      // The interrupted run goes first, under its own run id; the tick's run then meets it as `overlap` says.
      entry.resumeAtNextTick = false;
      if (policy === 'replace')
        this.#log?.warn(
          {job: entry.loaded.spec.name, event: 'run:abandoned'},
          'an interrupted run is not resumed now: a new run replaces it (overlap: replace); the next start resumes it',
        );
      else this.#resumeInterrupted(entry);
    }
    const decision = decideOverlap(policy, [...entry.runs.keys()], entry.pending !== undefined);
    if (decision.action === 'skip') return this.#skip(entry, trigger, scheduledAt, decision.reason);
    if (decision.action === 'queue') {
      entry.pending = {trigger, scheduledAt};
      this.#emit(
        'run:queued',
        {job: entry.loaded.spec.name, trigger, scheduledAt},
        'info',
        `queued: run ${[...entry.runs.keys()].join(', ')} is still running (overlap: queue)`,
      );
      return {outcome: 'queued'};
    }
    if (decision.action === 'replace')
      for (const run of entry.runs.values()) this.#cancelRun(run, `replaced by a newer ${trigger} run (overlap: replace)`);
    return this.#start(entry, trigger, scheduledAt);
  }

  #skip(entry: JobEntry, trigger: RunTrigger, scheduledAt: number | undefined, reason: string): TriggerResult {
    const job = entry.loaded.spec.name;
    const runId = newRunId(new Date(this.#clock.now()));
    this.#state.write('state:write', () => this.#store?.recordSkipped({runId, job, trigger, scheduledAt, at: this.#clock.now(), reason}));
    this.#pruneHistory(job);
    this.#emit('run:skipped', {job, runId, trigger, scheduledAt, reason}, 'warn', `skipped: ${reason}`);
    return {outcome: 'skipped', runId, reason};
  }

  /**
   * At start-up: every run of this job that a crash, a kill or the end of a grace period cut short
   * is resumed, oldest first, one after the other (records with a result are not sent again),
   * unless the job says `onInterrupted: abandon`. Each resumes as it started (target, concurrency...).
   */
  #resumeInterrupted(entry: JobEntry): void {
    if (!this.#store) return;
    entry.resumes = this.#state.try('state:read', () => interruptedRunsToResume(this.#store!, entry.loaded, this.#log)) ?? [];
    this.#resumeNext(entry);
  }

  /** Starts the next interrupted run waiting to be resumed, if no run of the job is going. */
  #resumeNext(entry: JobEntry): boolean {
    const next = entry.runs.size === 0 ? entry.resumes?.shift() : undefined;
    if (!next) return false;
    const job = entry.loaded.spec.name;
    this.#log?.info(
      {job, runId: next.runId, event: 'run:resuming'},
      `resuming run ${next.runId}${entry.resumes!.length > 0 ? ` (${entry.resumes!.length} more interrupted runs wait)` : ''}`,
    );
    this.#start(entry, next.trigger, next.scheduledAt, next);
    return true;
  }

  #start(entry: JobEntry, trigger: RunTrigger, scheduledAt: number | undefined, resume?: {runId: string; info: ResumeInfo}): TriggerResult {
    const loaded = resume ? asRecorded(entry.loaded, resume.info) : entry.loaded;
    const job = loaded.spec.name;
    const runId = resume?.runId ?? newRunId(new Date(this.#clock.now()));
    const ref = {job, runId, trigger, scheduledAt};
    const original = loaded.spec.onResult;
    const observed: LoadedJob = {
      ...loaded,
      spec: {...loaded.spec, onResult: (result) => (this.#emit('run:result', {...ref, result}), original?.(result))},
    };
    // The files first: a run whose results or failures file another run writes never starts.
    const now = () => this.#clock.now();
    let lifecycle: RunLifecycle;
    try {
      lifecycle = RunLifecycle.lock(observed, runId, RunRecorder.using(this.#store, this.#log, now), {resume: resume !== undefined, now});
    } catch (error) {
      if (!resume) return this.#skip(entry, trigger, scheduledAt, getErrorMessage(error));
      this.#log?.warn({job, runId, event: 'run:abandoned'}, `run ${runId} is not resumed now: ${getErrorMessage(error)}`);
      return {outcome: 'skipped', runId, reason: getErrorMessage(error)};
    }
    const run: ActiveRun = {
      job,
      runId,
      trigger,
      scheduledAt,
      stop: new AbortController(),
      cancel: new AbortController(),
      done: Promise.resolve(),
    };
    entry.runs.set(runId, run);
    this.#active.add(run);
    this.#emit('run:started', ref, 'info', `${trigger} run started`);
    // The run facade records it, runs it, records its end (a run the end of the grace period
    // cancelled as interrupted: the next start resumes it) and lets go of its files.
    run.done = executeRun(lifecycle, {
      engine: {run: this.#runner},
      trigger,
      scheduledAt,
      signal: run.stop.signal,
      cancelSignal: run.cancel.signal,
      progressIntervalMs: this.#progressIntervalMs,
      logLifecycle: false, // run:started and run:finished are this scheduler's events, logged once
      ...(this.#log ? {logger: this.#log.child({component: 'run'})} : {}),
      onProgress: (progress) => this.#emit('run:progress', {...ref, progress}),
      endAs: ({summary, error}) => ({
        reason: run.cancelReason,
        ...(run.cutByShutdown && error === undefined && summary?.status === 'cancelled' ? {status: 'interrupted' as const} : {}),
      }),
    }).then((finished) => this.#finish(entry, run, finished));
    return {outcome: 'started', runId};
  }

  /** Keeps the job's history to its newest `keepRuns` runs (see StateStore#pruneRuns). */
  #pruneHistory(job: string): void {
    if (this.#keepRuns > 0) this.#state.write('state:write', () => this.#store?.pruneRuns(job, this.#keepRuns));
  }

  /** Once the run's end is recorded and its files let go: tells how it ended and starts what waited for it. */
  #finish(entry: JobEntry, run: ActiveRun, finished: FinishedRun): void {
    entry.runs.delete(run.runId);
    this.#active.delete(run);
    const {status, reason, summary: partial, failed, error} = finished;
    const summary = failed ? undefined : finished.summary;
    this.#pruneHistory(run.job);
    const counts = partial ? `: ${partial.ok} ok, ${partial.failed} failed, ${partial.invalid} invalid of ${partial.total}` : '';
    this.#emit(
      'run:finished',
      {
        job: run.job,
        runId: run.runId,
        trigger: run.trigger,
        scheduledAt: run.scheduledAt,
        status,
        ...(summary ? {summary} : {}),
        ...(reason ? {reason} : {}),
        ...(failed ? {error: getErrorMessage(error)} : {}),
      },
      status === 'error' ? 'error' : status === 'succeeded' ? 'info' : 'warn',
      `run ${status}${counts}${reason ? ` (${reason})` : ''}`,
    );
    const current = this.#entries.get(run.job);
    if (current !== entry || this.#isClosing) return;
    const noKey = status === 'interrupted' ? moduleResumeProblem(entry.loaded.spec, run.runId, finished.resumeInfo.input) : undefined;
    if (noKey)
      this.#log?.warn(
        {job: run.job, runId: run.runId, event: 'run:abandoned'},
        `run ${run.runId} was interrupted but is not resumed; it stays recorded interrupted: ${noKey}`,
      );
    else if (status === 'interrupted' && !run.cutByShutdown && !this.#shared && entry.loaded.spec.onInterrupted === 'resume') {
      entry.resumeAtNextTick = true;
      this.#log?.info(
        {job: run.job, runId: run.runId, event: 'run:resume-planned'},
        `run ${run.runId} is resumed at the job's next tick (onInterrupted: resume)`,
      );
    }
    if (entry.runs.size > 0) return;
    if (this.#resumeNext(entry)) return;
    if (entry.pending) {
      const next = entry.pending;
      entry.pending = undefined;
      this.#start(entry, next.trigger, next.scheduledAt);
    }
  }

  #cancelRun(run: ActiveRun, reason: string): void {
    if (run.cancelReason) return;
    run.cancelReason = reason;
    this.#emit(
      'run:cancelling',
      {job: run.job, runId: run.runId, trigger: run.trigger, scheduledAt: run.scheduledAt, reason},
      'warn',
      `cancelling: ${reason}`,
    );
    run.stop.abort(reason);
    run.cancel.abort(reason);
  }

  /** Emits an event (a throwing listener is logged, never thrown into the loop) and logs it. */
  #emit<E extends SchedulerEventName>(
    event: E,
    payload: SchedulerEvents[E],
    level?: 'debug' | 'info' | 'warn' | 'error',
    message?: string,
  ): void {
    if (level && this.#log) {
      const {summary: _summary, progress: _progress, result: _result, jobs: _jobs, ...fields} = payload as Record<string, unknown>;
      this.#log[level]({...fields, event}, message ?? event);
    }
    try {
      this.emit(event, payload);
    } catch (error) {
      this.#log?.error(
        {event: 'listener:failed', for: event, error: getErrorMessage(error)},
        `a listener of ${event} threw: ${getErrorMessage(error)}`,
      );
    }
  }
}
