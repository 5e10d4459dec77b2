import type {JsonNames} from '../rpc/json-names.js';
import type {RetryPolicy} from '../rpc/retry.js';
import type {MetadataTemplate} from './metadata-template.js';
import type {TlsSpec} from '../rpc/credentials.js';
import type {TransportName} from '../rpc/h2-transport.js';
import type {RecordResult} from './results.js';
import type {OverlapPolicy, ScheduleSpec} from './schedule-spec.js';

/** How input records are read (`inputFormat`). */
export type InputFormat = 'message' | 'envelope';

/** A duration at the edge: "500ms", "10s", "1m", "1h", or a number of ms. */
export type DurationInput = string | number;

/**
 * A job as written in a job file (YAML/JSON) or passed to `defineJob`. Every key is documented in
 * schema/job.schema.json and the README.
 */
export interface JobInput {
  /** Job name, used in file names and logs. @default the job file's name without extension */
  readonly name?: string;
  /** `host:port`, `dns:///host:port` or `unix:/path`. */
  readonly target: string;
  /** The .proto file(s) of the method; relative to the job file. Without `proto` or `protoset`: server reflection. */
  readonly proto?: string | readonly string[];
  /** Folders searched for imports after the proto's own. @default [] */
  readonly importPaths?: readonly string[];
  /** FileDescriptorSet file(s) (`protoc --include_imports --descriptor_set_out`), instead of `proto`. */
  readonly protoset?: string | readonly string[];
  /** Metadata of the server reflection calls, instead of `metadata`. @default the job's metadata */
  readonly reflectionMetadata?: Readonly<Record<string, string | number | boolean>>;
  /** `package.Service/Method`: unary, client-streaming or bidi-streaming. */
  readonly method: string;
  /** JSONL file of request messages, or '-' for stdin. A job module may give `requests` instead. */
  readonly input?: string;
  /** `message`: a record is the request; `envelope`: `{"request", "metadata", "deadline"}`. @default 'message' */
  readonly inputFormat?: InputFormat;
  /** Longest input line, bytes or `16MiB`. @default '4MiB' */
  readonly maxLineBytes?: number | string;
  /** Most calls in flight. Minimum: 1. @default 100 */
  readonly concurrency?: number;
  /** Most calls started per second, retries included; 0 = no limit. @default 0 */
  readonly rps?: number;
  /** Per-attempt deadline; 0 = none. @default '30s' */
  readonly deadline?: DurationInput;
  /** Wait for the connection instead of failing fast while it is down. @default false */
  readonly waitForReady?: boolean;
  /**
   * How long to wait for an unreachable backend before the run stops, interrupted and resumable
   * (exit 4); 0 = forever. Nothing is sent and nothing fails while it waits. @default '5m'
   */
  readonly maxOutage?: DurationInput;
  /** Adapt the calls in flight (under `concurrency`) to the backend's latency and shedding. @default false */
  readonly adaptive?: boolean;
  /** Concurrency and rps rise from 1 to their caps over this long; 0 = at once. @default 0 */
  readonly rampUp?: DurationInput;
  /** Connections to spread calls over. Minimum: 1. @default 1 */
  readonly channels?: number;
  /**
   * What sends the calls: `grpc-js`, or `h2`, grpc-batch's own HTTP/2 client (unary methods only;
   * no `unix:` targets; the channel options it reads are listed in the README). @default 'grpc-js'
   */
  readonly transport?: TransportName;
  /**
   * Bidi-streaming methods only: streams the records go over, each carrying its share of
   * `concurrency`. Minimum: 1. @default concurrency (one record in flight per stream; see stream-bidi.ts)
   */
  readonly streams?: number;
  /** Client-streaming methods only: records per call, at most `concurrency`. Minimum: 1. @default min(100, concurrency) */
  readonly batchSize?: number;
  /**
   * Server-streaming methods only: most replies kept for one record (they are held until its
   * stream ends, then written as one results line); a stream with more is cancelled and the
   * record fails with RESOURCE_EXHAUSTED. Minimum: 1. @default 10000
   */
  readonly maxRepliesPerRecord?: number;
  /**
   * Worker threads that send the calls, each with its own channel and a share of `concurrency` and
   * `rps`; `auto` picks one per core for each ~100 calls in flight; 1 = the main thread only. @default 1
   */
  readonly workers?: number | 'auto';
  readonly retry?: {
    /** Attempts in all; 1 = no retry. @default 5 */
    readonly maxAttempts?: number;
    /** @default '100ms' */
    readonly initialBackoff?: DurationInput;
    /** @default '10s' */
    readonly maxBackoff?: DurationInput;
    /** @default 2 */
    readonly backoffMultiplier?: number;
    /** @default ['UNAVAILABLE'] */
    readonly retryableStatusCodes?: readonly (string | number)[];
    /** Retry throttling (gRPC A6). @default {maxTokens: max(100, 2 × concurrency), tokenRatio: 1} */
    readonly throttle?: {readonly maxTokens?: number; readonly tokenRatio?: number};
  };
  /** What the daemon does at start-up with a run of this job that was interrupted (crash, kill, grace ended). @default 'resume' */
  readonly onInterrupted?: 'resume' | 'abandon';
  /** Stop the run once more records than this are invalid. @default no limit */
  readonly maxInvalid?: number;
  /** Stop the run once more records than this have failed. @default no limit */
  readonly maxFailures?: number;
  /** Metadata sent with every call; values may hold `{{field.path}}` placeholders. @default {} */
  readonly metadata?: Readonly<Record<string, string | number | boolean>>;
  /** Record response headers and trailers in the results. @default false */
  readonly recordMetadata?: boolean;
  /** Field names in the results: protoc's JSON names, or as in the proto. @default 'json' */
  readonly jsonNames?: JsonNames;
  /** Print response fields at their default values. @default false */
  readonly emitDefaults?: boolean;
  /** TLS files; omitted = plaintext. */
  readonly tls?: TlsSpec;
  /** grpc-js channel options. @default {} */
  readonly channelOptions?: Readonly<Record<string, unknown>>;
  /** Results file template ({name}, {runId}); relative to the job file. @default '{name}-{runId}.jsonl' in ./out (or --out-dir) */
  readonly output?: string;
  /** Failures file template ({name}, {runId}); relative to the job file. @default '{name}-{runId}.failed.jsonl' in ./out (or --out-dir) */
  readonly failures?: string;
  /** Request fields copied into each results line's `key`, beside the input line (`[user_id, order.id]`). @default [] */
  readonly resultFields?: readonly string[];
  /** Cron expression for the daemon: 5 fields, or 6 with seconds first. Ignored by `run`. */
  readonly schedule?: string;
  /** IANA zone the schedule is read in. @default the machine's zone */
  readonly timezone?: string;
  /** When a run fires while the previous one still runs. @default 'skip' */
  readonly overlap?: OverlapPolicy;
  /** A tick missed within this window before start-up runs once; 0 = never. @default 0 */
  readonly catchUp?: DurationInput;
  /** Most random delay before a fired run starts. @default 0 */
  readonly jitter?: DurationInput;
  /** false: loaded, never fired on schedule. @default true */
  readonly enabled?: boolean;
}

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

export const DEFAULTS = {
  concurrency: 100,
  rps: 0,
  deadline: '30s',
  maxOutage: '5m',
  channels: 1,
  transport: 'grpc-js',
  workers: 'auto',
  output: '{name}-{runId}.jsonl',
  failures: '{name}-{runId}.failed.jsonl',
} as const;

/** Where the default results and failures files go: `out/` in the working folder (`--out-dir` changes it). */
export const DEFAULT_OUT_DIR = 'out';

/** Identity with types: the way a job module declares its job. */
export function defineJob<T extends JobModule>(job: T): T {
  return job;
}
