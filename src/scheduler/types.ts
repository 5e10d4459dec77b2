import type {LoadedJob} from '../config/load.js';
import type {RecordResult} from '../io/results.js';
import type {ProgressSnapshot, RunOptions} from '../engine/run.js';
import type {OverlapPolicy, ScheduleSpec} from '../config/schedule-spec.js';
import type {RunSummary} from '../engine/stats.js';
import type {Logger} from '../util/log.js';
import type {RunStatus, RunTrigger, StateStore} from '../state/store.js';
import type {Clock} from './clock.js';

/** Runs one job once; `runJob` unless a test injects another. */
export type JobRunner = (job: LoadedJob, options: RunOptions) => Promise<RunSummary>;

export interface SchedulerOptions {
  /** Source of time and timers. @default systemClock */
  readonly clock?: Clock;
  /** Where runs and last fired ticks are recorded; without it there is no catch-up and no history. */
  readonly store?: StateStore;
  /** Every event is also logged here, one JSON line with job, runId and event. */
  readonly logger?: Logger;
  /** @default runJob */
  readonly runner?: JobRunner;
  /** Random numbers in [0, 1) for jitter. @default Math.random */
  readonly random?: () => number;
  /** The clock is looked at again at least this often (machine sleep, clock changes). Minimum: 1. @default 30_000 */
  readonly maxTimerMs?: number;
  /** How often running runs report progress (`run:progress`). @default 1000 */
  readonly progressIntervalMs?: number;
  /**
   * Newest runs kept per job in the store. After each run, older runs that ended for good are
   * deleted; runs that may still be resumed never are. 0 keeps every run. @default 1000
   */
  readonly keepRuns?: number;
  /**
   * Daemon replicas (`daemon --redis`): ticks and manual runs go to this shared queue instead of
   * starting here; the replica that takes one runs it through `Scheduler#runShared`.
   */
  readonly shared?: {fire(job: string, trigger: RunTrigger, scheduledAt: number | undefined, overlap: OverlapPolicy): void};
}

/** A job as the scheduler sees it. */
export interface ScheduledJobInfo {
  readonly name: string;
  readonly file: string;
  /** Undefined for a job without `schedule` (manual runs only). */
  readonly schedule: ScheduleSpec | undefined;
  /** Undefined when the job never fires on its own (no schedule, or `enabled: false`). */
  readonly nextFireAt: number | undefined;
  readonly running: number;
  readonly queued: boolean;
}

/** What a trigger (tick or manual) came to. */
export type TriggerResult =
  | {readonly outcome: 'started'; readonly runId: string}
  | {readonly outcome: 'queued'}
  | {readonly outcome: 'skipped'; readonly runId: string; readonly reason: string}
  | {readonly outcome: 'unknown-job' | 'closing'; readonly reason: string};

interface RunRef {
  readonly job: string;
  readonly runId: string;
  readonly trigger: RunTrigger;
  /** The tick the run is for; undefined for manual runs. */
  readonly scheduledAt: number | undefined;
}

/** Every event, `noun:verb`, with its payload. */
export interface SchedulerEvents {
  'scheduler:started': {readonly jobs: readonly ScheduledJobInfo[]};
  'job:scheduled': {readonly job: string; readonly nextFireAt: number | undefined};
  /** Ticks that will not run: outside the catch-up window, or missed while the process was asleep. */
  'tick:missed': {readonly job: string; readonly firstAt: number; readonly count: number; readonly reason: string};
  'run:started': RunRef;
  'run:queued': Omit<RunRef, 'runId'>;
  'run:skipped': RunRef & {readonly reason: string};
  'run:cancelling': RunRef & {readonly reason: string};
  'run:progress': RunRef & {readonly progress: ProgressSnapshot};
  /** One finished record of a run (for metrics). */
  'run:result': RunRef & {readonly result: RecordResult};
  'run:finished': RunRef & {
    readonly status: Exclude<RunStatus, 'running' | 'skipped'>;
    readonly summary?: RunSummary;
    readonly error?: string;
    readonly reason?: string;
  };
  /** The wall clock went back by `byMs` (seen at `at`); every job was planned again from then. */
  'clock:stepped-back': {readonly byMs: number; readonly at: number};
  'jobs:reloaded': {readonly added: readonly string[]; readonly removed: readonly string[]; readonly kept: readonly string[]};
  'scheduler:closing': {readonly graceMs: number; readonly running: number};
  'scheduler:closed': Record<string, never>;
}

export type SchedulerEventName = keyof SchedulerEvents;
