import type {JsonNames} from '../codec/json-names.js';
import type {RetryPolicy} from '../rpc/retry.js';
import type {MetadataTemplate} from './metadata-template.js';
import type {TlsSpec} from '../rpc/credentials.js';
import type {TransportName} from '../rpc/h2-transport.js';
import type {RecordResult} from '../io/results.js';
import type {ScheduleSpec} from './schedule-spec.js';
import {declaredDefaults, type InputOf, type JobDefaults, type JobKeys} from './job-keys.js';

/** How input records are read (`inputFormat`). */
export type InputFormat = 'message' | 'envelope';

/** A duration at the edge: "500ms", "10s", "1m", "1h", or a number of ms. */
export type DurationInput = string | number;

/**
 * A job as written in a job file (YAML/JSON) or passed to `defineJob`: derived from the declaration
 * of its keys (src/config/job-keys.ts), where each key's doc and default are, as in
 * schema/job.schema.json and the README.
 */
export type JobInput = InputOf<JobKeys>;

/** The programmatic form: a job module's default export. */
export interface JobModule extends JobInput {
  /** Produces the request messages (instead of `input`). */
  readonly requests?: () => AsyncIterable<unknown> | Iterable<unknown>;
  /** Called once per finished record, in completion order; a throw aborts the run. */
  readonly onResult?: (result: RecordResult) => void | Promise<void>;
}

/** A job after loading and validation: every default applied, durations in ms, paths absolute. */
export interface JobSpec {
  readonly name: string;
  /** The job file it came from, for messages. */
  readonly file: string;
  readonly target: string;
  /** Absolute paths; empty when the schema comes from a protoset or reflection. */
  readonly proto: readonly string[];
  readonly importPaths: readonly string[];
  /** Absolute paths; empty unless the schema comes from descriptor sets. */
  readonly protoset: readonly string[];
  /** Undefined: reflection calls carry `metadata` (its static values). */
  readonly reflectionMetadata: Readonly<Record<string, string>> | undefined;
  readonly method: string;
  /** Absolute path, '-' for stdin, or undefined when `requests` is given. */
  readonly input: string | undefined;
  readonly inputFormat: InputFormat;
  readonly maxLineBytes: number;
  readonly recordMetadata: boolean;
  readonly jsonNames: JsonNames;
  readonly emitDefaults: boolean;
  readonly requests: (() => AsyncIterable<unknown> | Iterable<unknown>) | undefined;
  readonly onResult: ((result: RecordResult) => void | Promise<void>) | undefined;
  readonly concurrency: number;
  readonly rps: number;
  readonly deadlineMs: number;
  readonly waitForReady: boolean;
  readonly maxOutageMs: number;
  readonly adaptive: boolean;
  readonly rampUpMs: number;
  readonly channels: number;
  readonly transport: TransportName;
  /** As written; undefined = the default for the method (`defaultStreams`). */
  readonly streams: number | undefined;
  /** As written; undefined = the default for the method (`defaultBatchSize`). */
  readonly batchSize: number | undefined;
  /** As written; undefined = `DEFAULT_MAX_REPLIES` (server-streaming methods). */
  readonly maxRepliesPerRecord?: number | undefined;
  /** Worker threads, resolved (`auto` made a number); 1 = the main thread only. */
  readonly workers: number;
  /** `workers` as written (`auto` by default), to say what `auto` became. */
  readonly workersSetting?: number | 'auto';
  readonly retry: RetryPolicy;
  readonly maxInvalid: number | undefined;
  readonly maxFailures: number | undefined;
  readonly onInterrupted: 'resume' | 'abandon';
  readonly metadata: Readonly<Record<string, string>>;
  /**
   * The `metadata` values that are `{{field}}` templates, as recognised in the job's text before
   * `${VAR}` expansion; absent for a spec made in code (then every value holding `{{` is one).
   */
  readonly metadataTemplates?: readonly MetadataTemplate[];
  readonly tls: TlsSpec | undefined;
  readonly channelOptions: Readonly<Record<string, unknown>>;
  /** Template, absolute. */
  readonly output: string;
  /** Template, absolute. */
  readonly failures: string;
  /** Request field paths copied into each result's key. */
  readonly resultFields: readonly string[];
  /** The schedule keys, resolved; undefined when the job has no `schedule`. */
  readonly schedule?: ScheduleSpec | undefined;
}

/** The default of each top-level key that has one, from the declaration (src/config/job-keys.ts). */
export const DEFAULTS: JobDefaults = declaredDefaults();

/** Where the default results and failures files go: `out/` in the working folder (`--out-dir` changes it). */
export const DEFAULT_OUT_DIR = 'out';

/** Identity with types: the way a job module declares its job. */
export function defineJob<T extends JobModule>(job: T): T {
  return job;
}
