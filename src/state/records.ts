import type {RunSummary} from '../engine/stats.js';
import type {StopReason} from '../stop-reason.js';
import type {InputRead} from '../io/input-digest.js';

/** What the state database holds of a run, as its readers and writers see it (store.ts keeps the rows). */

export type RunTrigger = 'schedule' | 'catch-up' | 'manual';
export type RunStatus = 'running' | 'succeeded' | 'failed' | 'cancelled' | 'skipped' | 'error' | 'interrupted';

/** One run as stored. Times are ms since epoch. */
export interface RunRecord {
  readonly runId: string;
  readonly job: string;
  readonly trigger: RunTrigger;
  readonly scheduledAt: number | undefined;
  readonly createdAt: number;
  readonly startedAt: number | undefined;
  readonly endedAt: number | undefined;
  readonly status: RunStatus;
  /** Why, in words (for people; may be reworded): skipped, cancelled, stopped, error. */
  readonly reason: string | undefined;
  /** Why it stopped before the end of its input, as data: what resume and pruning read. */
  readonly stop?: StopReason;
  readonly total: number | undefined;
  /** Records in the input, when it was counted (a file); `total` is the records read. */
  readonly inputRecords: number | undefined;
  readonly ok: number | undefined;
  readonly failed: number | undefined;
  readonly invalid: number | undefined;
  readonly byStatus: Readonly<Record<string, number>> | undefined;
  readonly output: string | undefined;
  readonly failures: string | undefined;
  readonly host: string;
  readonly pid: number;
  /** Id of the process that runs (or last ran) it. */
  readonly owner: string | undefined;
  /** When its owner last renewed its lease. */
  readonly heartbeatAt: number | undefined;
}

/** What `finishRun` records. */
export interface RunOutcome {
  readonly status: Exclude<RunStatus, 'running' | 'skipped'>;
  readonly endedAt: number;
  readonly reason?: string | undefined;
  readonly stop?: StopReason | undefined;
  readonly total?: number;
  readonly inputRecords?: number | undefined;
  readonly ok?: number;
  readonly failed?: number;
  readonly invalid?: number;
  readonly byStatus?: Readonly<Record<string, number>>;
  readonly output?: string;
  readonly failures?: string | undefined;
}

/** The counts, files and reason of a finished run, as `finishRun` records them. */
export function summaryOutcome(summary: RunSummary): Omit<RunOutcome, 'status' | 'endedAt'> {
  return {
    reason: summary.stopReason ?? summary.abortReason,
    stop: summary.stop ?? (summary.stopReason ? 'signal' : undefined),
    total: summary.total,
    inputRecords: summary.inputRecords,
    ok: summary.ok,
    failed: summary.failed,
    invalid: summary.invalid,
    byStatus: summary.byStatus,
    output: summary.output,
    failures: summary.failures,
  };
}

/** Where a run reads and writes, stored when it starts, for `--resume`. */
export interface ResumeInfo {
  readonly jobFile: string;
  /** The input file (absolute), or `-` and its aliases for standard input; undefined for a module's `requests()`. */
  readonly input?: string | undefined;
  readonly inputSize?: number | undefined;
  readonly inputMtimeMs?: number | undefined;
  readonly output: string;
  readonly failures: string;
  /** The keys flags can override, as the run started with them. */
  readonly spec?: RecordedSpec | undefined;
  /** The input is not a regular file (standard input, a pipe, FIFO, socket, device): it cannot be read again. */
  readonly inputIsStream?: boolean | undefined;
  /** What the run sends, compared by `--resume` (a change is refused); undefined in rows of older versions. */
  readonly job?: RecordedJob | undefined;
  /** How much of the input the run has read, and a hash of it, recorded before any record read is sent. */
  readonly inputRead?: InputRead | undefined;
  /** Result lines in the results file at the run's last checkpoint (undefined in rows of older versions). */
  readonly results?: number | undefined;
}

/** A run's effective values of the keys that flags override, recorded at its start (keys missing in rows of older versions). */
export interface RecordedSpec {
  readonly target: string;
  readonly concurrency: number;
  readonly rps: number;
  readonly deadlineMs: number;
  readonly maxAttempts: number;
  readonly maxLineBytes?: number;
  /** null: no limit. */
  readonly maxFailures?: number | null;
  /** null: no limit. */
  readonly maxInvalid?: number | null;
  readonly workers?: number;
  readonly maxOutageMs?: number;
  readonly adaptive?: boolean;
  readonly rampUpMs?: number;
}

/** What a run sends, as it started: `--resume` refuses a job that changed any of it. */
export interface RecordedJob {
  /** `package.Service/Method`. */
  readonly method: string;
  readonly requestType: string;
  readonly inputFormat: string;
  /** Per metadata key, a hash of its value as written in the job file (`${VAR}` not expanded): never the value. */
  readonly metadata: Readonly<Record<string, string>>;
}
