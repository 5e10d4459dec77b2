import type {JobSpec} from '../config/spec.js';
import type {OutageEvent, OutageStatus} from '../rpc/outage-gate.js';
import type {SharedLatencies} from './stats.js';

/**
 * The messages between a run and its worker threads: plain data only (structured clone). The run
 * (main thread) reads and encodes the input and writes the files; a worker sends the calls over
 * its own channel and makes the result lines.
 */

/** A job spec without its functions (`requests`, `onResult` stay on the main thread). */
export type PlainSpec = Omit<JobSpec, 'requests' | 'onResult'>;

export interface WorkerInit {
  readonly spec: PlainSpec;
  /** This worker's part of the job's `concurrency` and `rps`; the parts add up to the totals. */
  readonly share: {readonly concurrency: number; readonly rps: number};
  readonly index: number;
  /** The method's schema as protobufjs JSON (from whatever source: a worker does not ask the server again). */
  readonly schema: {readonly json: unknown; readonly origin: string};
}

export type ToWorker =
  | {readonly type: 'calls'; readonly calls: readonly WorkerCall[]}
  /** These records' results are on disk: their slots may take new records. */
  | {readonly type: 'ack'; readonly lines: readonly number[]}
  | {readonly type: 'stop'}
  | {readonly type: 'cancel'}
  /** No more records: finish, report, close. */
  | {readonly type: 'end'};

/** A record for a worker: its request, and its own metadata (as entries) and deadline when it has them. */
export interface WorkerCall {
  readonly line: number;
  readonly request: Uint8Array;
  readonly metadata?: Readonly<Record<string, string | Uint8Array | readonly (string | Uint8Array)[]>>;
  readonly deadlineMs?: number;
}

export interface WorkerStatus {
  readonly records: number;
  readonly calls: number;
  readonly limit: number;
  readonly attempts: number;
  readonly throttled: number;
  readonly outage: OutageStatus;
}

export type ResultItem =
  /** `text`: the result line without its key (the run adds it); `details`: a failed record's error message. */
  | {
      readonly line: number;
      readonly kind: 'final';
      readonly code: number;
      readonly attempts: number;
      readonly text: string;
      readonly details?: string | undefined;
    }
  | {readonly line: number; readonly kind: 'unsent'};

export type FromWorker =
  | {readonly type: 'results'; readonly items: readonly ResultItem[]; readonly status: WorkerStatus}
  | {readonly type: 'status'; readonly status: WorkerStatus}
  | {readonly type: 'outage'; readonly event: OutageEvent}
  | {readonly type: 'fatal'; readonly message: string}
  | {
      readonly type: 'done';
      readonly status: WorkerStatus;
      readonly latencies: SharedLatencies;
      readonly limitRange: {min: number; mean: number; max: number} | undefined;
    };

/** The spec a worker can be given: the functions removed. */
export function plainSpec(spec: JobSpec): PlainSpec {
  const {requests: _requests, onResult: _onResult, ...plain} = spec;
  return plain;
}
