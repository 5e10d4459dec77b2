import type {InputRecord} from '../io/input.js';
import {outcomeExtras, type RecordOutcome} from '../io/results.js';
import type {CallOutcome} from '../rpc/call.js';
import type {OutageEvent} from '../rpc/outage-gate.js';
import {Status, statusName} from '../codec/status.js';
import type {PipelineStatus, PlannedCall} from './pipeline.js';
import type {RunStats} from './stats.js';

/** A call with the input record it came from (kept on the run's side: the sink copies failed records from it). */
export interface RecordCall extends PlannedCall {
  readonly record: InputRecord;
}

/** What an executor tells the run about each record it was given. */
export interface ExecutorEvents {
  /**
   * A record's final outcome: its status code, attempts and the result to write (the run adds the
   * record's key), as an object or as its JSON line already made (a worker thread makes it, `line`
   * first); `details` is the error message of a failed record. A rejection aborts the run.
   */
  readonly onFinal: (
    call: RecordCall,
    code: number,
    attempts: number,
    result: RecordOutcome | string,
    details: string | undefined,
  ) => void | Promise<void>;
  /** The run stopped before the record got a final outcome: no result; a resume sends it. */
  readonly onUnsent: (call: RecordCall) => void;
  readonly onOutage: (event: OutageEvent) => void;
  /** An error that stops the run (I/O, a bug, a worker that died). */
  readonly onFatal: (error: unknown) => void;
}

/**
 * Runs records: on the main thread (`InlineExecutor`) or on worker threads (`ThreadExecutor`). The
 * run hands records in while `hasRoom`, and hears of each one through `ExecutorEvents`.
 */
export interface Executor {
  /** Whether another record may be handed in now. */
  readonly hasRoom: boolean;
  /** Resolves when there is room, or the executor is stopping. */
  room(): Promise<void>;
  submit(call: RecordCall): void;
  /** Resolves once every record handed in has been reported. */
  idle(): Promise<void>;
  /** No new records or first attempts; records being retried finish; those waiting for the backend leave unsent. */
  stop(): void;
  /** Stops, and cuts the calls in flight and the backoffs: those records leave unsent. */
  cancel(): void;
  /** Ends timers, channels and threads. Call once idle. */
  close(): Promise<void>;
  status(): PipelineStatus;
  /** Calls made so far, retries included. */
  readonly attempts: number;
  /** Retries that waited for the retry throttle. */
  readonly throttled: number;
  /** min / mean / max of the adaptive limit (undefined without `adaptive`). */
  limitRange(): {min: number; mean: number; max: number} | undefined;
  /** Adds the latencies of every attempt to the run's stats. Call once closed. */
  collectLatencies(into: RunStats): void;
}

/** A record's result line from its final outcome (without its key: the run adds it). `line` comes first. */
export function resultOf(line: number, outcome: CallOutcome, attempts: number, latencyMs: number): RecordOutcome {
  if (outcome.ok) return {line, status: 'OK', attempts, latencyMs, response: outcome.response, ...outcomeExtras(outcome)};
  return {
    line,
    status: statusName(outcome.code),
    code: outcome.code,
    error: outcome.details,
    attempts,
    latencyMs,
    ...outcomeExtras(outcome),
  };
}

export function codeOf(outcome: CallOutcome): number {
  return outcome.ok ? Status.OK : outcome.code;
}

/** The error message of a failed outcome, for the summary's top errors. */
export function detailsOf(outcome: CallOutcome): string | undefined {
  return outcome.ok ? undefined : outcome.details;
}
