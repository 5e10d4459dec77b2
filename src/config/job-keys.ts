import type {Static, TSchema, JavaScriptTypeBuilder} from '@sinclair/typebox';

/**
 * The one declaration of a job's keys. Each key is written here once: its JSON Schema (built with
 * TypeBox), its doc, its default, its `run` flag, and whether a run records it, carries it into the
 * printed `--resume` command and ships it to workers. From it come the `JobInput` type, `DEFAULTS`,
 * schema/job.schema.json (`npm run schema`, checked by test/config/job-keys.test.ts), the override
 * flags of `run` and `validate` (bin/job-key-options.ts), what a printed `next:` command carries
 * (bin/next-step.ts) and the check of the README's key and flag tables.
 *
 * The schemas are functions of TypeBox's `Type`: they are called only by the schema generator and
 * read by the types, so running a job never loads TypeBox (validation reads the generated file).
 */
export type TypeBuilder = JavaScriptTypeBuilder;

/** How a flag's value is parsed (bin/job-key-options.ts maps each to a commander parser). */
export type FlagValue =
  | {readonly int: number}
  | {readonly number: number}
  | 'duration'
  | 'size'
  | 'workers'
  | {readonly choices: readonly string[]}
  /** A file: relative to the working folder, made relative to the job file's folder. */
  | 'path'
  | 'text'
  /** No value: the flag sets `true`. */
  | 'switch';

/** The `run` flag that overrides a key. Its commander attribute is the long name in camelCase. */
export interface FlagDeclaration {
  /** As commander takes it: `-c, --concurrency <n>`. */
  readonly flags: string;
  readonly help: string;
  readonly value: FlagValue;
  /** `validate` takes it too. */
  readonly validate?: true;
}

export interface KeyDeclaration {
  /** The key's JSON Schema, without doc and default (added from below). */
  readonly schema?: (t: TypeBuilder) => TSchema;
  /** A map's keys, declared the same way (`retry.maxAttempts`). */
  readonly keys?: Readonly<Record<string, KeyDeclaration>>;
  /** For editors: the schema's description. */
  readonly doc?: string;
  /** The default as a value; absent when it depends on other keys (say so in `doc`). */
  readonly default?: unknown;
  readonly required?: true;
  readonly flag?: FlagDeclaration;
  /**
   * Recorded when a run starts, reused by `--resume` (src/state/resumable.ts), and so carried into
   * the printed `--resume` command when given as a flag (bin/next-step.ts). The value is the name
   * the state database keeps it under.
   */
  readonly recorded?: string;
  /** Shipped to the workers of a distributed run, under this name of `ShippedRun` (src/scale/run-spec.ts). */
  readonly shipped?: string;
}

const DURATION_REF = {$ref: '#/definitions/duration'} as const;
const duration = (t: TypeBuilder) => t.Unsafe<string | number>(DURATION_REF);
const fileOrFiles = (t: TypeBuilder) => t.Union([t.String({minLength: 1}), t.Array(t.String({minLength: 1}), {minItems: 1})]);
/** Written as JSON Schema (not `Type.Record`, which gives patternProperties) to keep Ajv's messages plain. */
const metadataMap = (t: TypeBuilder) =>
  t.Unsafe<Record<string, string | number | boolean>>({type: 'object', additionalProperties: {type: ['string', 'number', 'boolean']}});

export const JOB_KEYS = {
  $schema: {schema: (t) => t.String(), doc: 'Path or URL of this schema, for editors.'},
  name: {
    schema: (t) => t.String({pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$'}),
    shipped: 'job',
    doc: "Job name, used in file names and logs. Default: the job file's name without extension.",
  },
  target: {
    schema: (t) => t.String({minLength: 1}),
    required: true,
    doc: 'Server address: host:port, dns:///host:port or unix:/path.',
    flag: {flags: '-t, --target <address>', help: 'server address, host:port (overrides target)', value: 'text'},
    recorded: 'target',
    shipped: 'target',
  },
  proto: {
    schema: fileOrFiles,
    doc: "The .proto file (or a list of them) defining the method. Without proto or protoset, the schema comes from the server's reflection service.",
  },
  importPaths: {schema: (t) => t.Array(t.String()), doc: "Folders searched for the proto's imports, after the proto's own folder."},
  protoset: {
    schema: fileOrFiles,
    doc: 'A FileDescriptorSet file (or a list of them), as written by protoc --include_imports --descriptor_set_out or buf build -o; instead of proto.',
  },
  reflectionMetadata: {
    schema: metadataMap,
    doc: "Metadata sent with the server reflection calls (when neither proto nor protoset is given), instead of the job's metadata.",
  },
  method: {schema: (t) => t.String({minLength: 1}), required: true, doc: 'Fully-qualified unary method: package.Service/Method.'},
  input: {
    schema: (t) => t.String({minLength: 1}),
    doc: "JSONL file, one request message per line (proto3 JSON mapping); '-' reads standard input.",
    flag: {
      flags: '-i, --input <file>',
      help: 'JSONL input file (gzip read transparently), or - for standard input (overrides input)',
      value: 'path',
      validate: true,
    },
  },
  inputFormat: {
    schema: (t) => t.Unsafe<'message' | 'envelope'>({enum: ['message', 'envelope']}),
    default: 'message',
    doc: 'message: each input record is the request. envelope: each is {"request": {...}, "metadata": {...}, "deadline": "2s"}, metadata and deadline for that record only.',
  },
  concurrency: {
    schema: (t) => t.Integer({minimum: 1, maximum: 100000}),
    default: 100,
    doc: 'Most calls in flight at once.',
    flag: {flags: '-c, --concurrency <n>', help: 'most calls in flight (overrides concurrency)', value: {int: 1}},
    recorded: 'concurrency',
    shipped: 'concurrency',
  },
  rps: {
    schema: (t) => t.Number({minimum: 0}),
    default: 0,
    doc: 'Most calls started per second over the whole run, retries included; 0 = no limit.',
    flag: {flags: '--rps <n>', help: 'most calls started per second, 0 = no limit (overrides rps)', value: {number: 0}},
    recorded: 'rps',
  },
  deadline: {
    schema: duration,
    default: '30s',
    doc: 'Deadline of each attempt; 0 = none.',
    flag: {
      flags: '-d, --deadline <duration>',
      help: 'deadline per attempt, e.g. 500ms, 10s, 1m30s, or ms (overrides deadline)',
      value: 'duration',
    },
    recorded: 'deadlineMs',
    shipped: 'deadlineMs',
  },
  retry: {
    doc: 'Retries with exponential backoff and full jitter.',
    shipped: 'retry',
    keys: {
      maxAttempts: {
        schema: (t) => t.Integer({minimum: 1, maximum: 100}),
        default: 5,
        doc: 'Attempts in all, the first included; 1 = no retry.',
        flag: {flags: '--max-attempts <n>', help: 'attempts per record, retries included (overrides retry.maxAttempts)', value: {int: 1}},
        recorded: 'maxAttempts',
      },
      initialBackoff: {schema: duration, default: '100ms'},
      maxBackoff: {schema: duration, default: '10s'},
      backoffMultiplier: {schema: (t) => t.Number({minimum: 1}), default: 2},
      retryableStatusCodes: {
        schema: (t) => t.Array(t.Unsafe<string | number>({type: ['string', 'integer']}), {minItems: 1}),
        default: ['UNAVAILABLE'],
        doc: 'Status names (UNAVAILABLE) or numbers (14).',
      },
      throttle: {
        doc: "Retry throttling in the manner of gRPC's retryThrottling: each failed attempt takes a token, each OK answer gives back tokenRatio, and retries stop while half the bucket or less is left, so a dead backend is not hit maxAttempts times per record.",
        keys: {
          maxTokens: {schema: (t) => t.Number({minimum: 1}), doc: 'Bucket size. Default max(100, 2 x concurrency).'},
          tokenRatio: {schema: (t) => t.Number({exclusiveMinimum: 0}), default: 1, doc: 'Tokens given back per OK answer.'},
        },
      },
    },
  },
  maxFailures: {
    schema: (t) => t.Integer({minimum: 0}),
    doc: 'Stop the run (status failed) once more records than this have failed. Default: no limit.',
    flag: {
      flags: '--max-failures <n>',
      help: 'stop the run once more records than this have failed (overrides maxFailures)',
      value: {int: 0},
    },
    recorded: 'maxFailures',
  },
  maxInvalid: {
    schema: (t) => t.Integer({minimum: 0}),
    doc: 'Stop the run (status failed) once more records than this are invalid. Default: no limit.',
    flag: {
      flags: '--max-invalid <n>',
      help: 'stop the run once more records than this are invalid (overrides maxInvalid)',
      value: {int: 0},
    },
    recorded: 'maxInvalid',
  },
  maxLineBytes: {
    schema: (t) => t.Union([t.Integer({minimum: 1}), t.String({pattern: '^\\s*\\d+(\\.\\d+)?\\s*([KkMmGg]i?[Bb]|[Bb])?\\s*$'})]),
    default: '4MiB',
    doc: 'Longest input line accepted, as bytes or a size like 16MiB, 64MB; a longer line is an invalid record. At most 512MiB.',
    flag: {
      flags: '--max-line-bytes <size>',
      help: 'longest input line, e.g. 16MiB (overrides maxLineBytes)',
      value: 'size',
      validate: true,
    },
    recorded: 'maxLineBytes',
  },
  workers: {
    schema: (t) => t.Union([t.Integer({minimum: 1, maximum: 256}), t.Unsafe<'auto'>({const: 'auto'})]),
    default: 'auto',
    doc: 'Worker threads that send the calls, each with its own channel and a share of concurrency and rps (the shares add up to the totals); auto = one per core for each ~100 calls in flight; 1 = the main thread only.',
    flag: {
      flags: '--workers <n|auto>',
      help: 'worker threads sending the calls, each with a share of the limits; auto = one per core for each ~100 in flight (overrides workers)',
      value: 'workers',
    },
    recorded: 'workers',
  },
  maxOutage: {
    schema: duration,
    default: '5m',
    shipped: 'maxOutageMs',
    doc: 'How long the run waits for an unreachable backend (connection refused or lost, or nothing but UNAVAILABLE) before it stops, interrupted and resumable (exit 4); 0 = wait forever. While it waits, no record is sent and none is failed.',
    flag: {
      flags: '--max-outage <duration>',
      help: 'how long to wait for an unreachable backend before stopping, resumable (exit 4); 0 = forever (overrides maxOutage)',
      value: 'duration',
    },
    recorded: 'maxOutageMs',
  },
  adaptive: {
    schema: (t) => t.Boolean(),
    default: false,
    shipped: 'adaptive',
    doc: 'Adapt the calls in flight under `concurrency` to the backend: fewer when its latency rises or it sheds calls (RESOURCE_EXHAUSTED, server pushback), more when it recovers.',
    flag: {
      flags: '--adaptive',
      help: "adapt the calls in flight under --concurrency to the backend's latency and shedding (overrides adaptive)",
      value: 'switch',
    },
    recorded: 'adaptive',
  },
  rampUp: {
    schema: duration,
    default: 0,
    shipped: 'rampUpMs',
    doc: 'Concurrency and rps rise from 1 to their caps over this long at the start of a run, so a cold backend is not hit by a wall of calls; 0 = at once.',
    flag: {
      flags: '--ramp-up <duration>',
      help: 'raise concurrency and rps from 1 to their caps over this long (overrides rampUp)',
      value: 'duration',
    },
    recorded: 'rampUpMs',
  },
  waitForReady: {
    schema: (t) => t.Boolean(),
    default: false,
    shipped: 'waitForReady',
    doc: 'Calls wait for the connection instead of failing fast with UNAVAILABLE while it is down.',
  },
  channels: {
    schema: (t) => t.Integer({minimum: 1, maximum: 64}),
    default: 1,
    shipped: 'channels',
    doc: 'Connections to spread calls over (for servers that cap concurrent streams per connection).',
    flag: {flags: '--channels <n>', help: 'HTTP/2 connections to spread calls over (overrides channels)', value: {int: 1}},
  },
  transport: {
    schema: (t) => t.Unsafe<'grpc-js' | 'h2'>({enum: ['grpc-js', 'h2']}),
    default: 'grpc-js',
    shipped: 'transport',
    doc: "What sends the calls: grpc-js, or h2, grpc-batch's own HTTP/2 client (unary methods only, no unix: targets, only the channel options it reads; see the README).",
    flag: {
      flags: '--transport <name>',
      help: "what sends the calls: grpc-js, or h2 (grpc-batch's own HTTP/2 client, unary methods only) (overrides transport)",
      value: {choices: ['grpc-js', 'h2']},
    },
  },
  streams: {
    schema: (t) => t.Integer({minimum: 1, maximum: 100000}),
    doc: 'Bidi-streaming methods only: how many streams carry the records, each with its share of concurrency. Default: concurrency (one record in flight per stream).',
  },
  maxRepliesPerRecord: {
    schema: (t) => t.Integer({minimum: 1, maximum: 10000000}),
    doc: 'Server-streaming methods only: most replies kept for one record; a stream with more is cancelled and the record fails with RESOURCE_EXHAUSTED. Default: 10000.',
  },
  batchSize: {
    schema: (t) => t.Integer({minimum: 1, maximum: 100000}),
    doc: "Client-streaming methods only: records sent per call; the call's one response is given to every record of the batch. At most concurrency. Default: min(100, concurrency).",
  },
  onInterrupted: {
    schema: (t) => t.Unsafe<'resume' | 'abandon'>({enum: ['resume', 'abandon']}),
    default: 'resume',
    doc: 'What the daemon does at start-up with a run of this job that a crash, a kill or the end of a shutdown grace period cut short: resume it (records with a result are not sent again) or abandon it.',
  },
  metadata: {
    schema: metadataMap,
    shipped: 'metadata',
    doc: 'Request metadata sent with every call; keys ending in -bin take base64 values. A value may hold {{field}} or {{field.nested}} placeholders, filled from each record.',
  },
  recordMetadata: {
    schema: (t) => t.Boolean(),
    default: false,
    shipped: 'recordMetadata',
    doc: "Record each call's response headers and trailers in its results line (headers, trailers).",
  },
  jsonNames: {
    schema: (t) => t.Unsafe<'json' | 'proto'>({enum: ['json', 'proto']}),
    default: 'json',
    doc: "Field names in the results: json = protoc's JSON names (lowerCamelCase, or json_name); proto = the names as in the .proto.",
  },
  emitDefaults: {
    schema: (t) => t.Boolean(),
    default: false,
    doc: 'Print response fields that hold their default value (0, "", false, [], {}), as grpcurl -emit-defaults and json_format\'s including_default_value_fields.',
  },
  tls: {
    doc: 'TLS; omitted = plaintext. cert and key together give mutual TLS.',
    shipped: 'tls',
    keys: {
      ca: {schema: (t) => t.String(), doc: 'PEM CA certificate file; default the system roots.'},
      cert: {schema: (t) => t.String(), doc: 'PEM client certificate file.'},
      key: {schema: (t) => t.String(), doc: 'PEM client private key file.'},
      serverName: {schema: (t) => t.String(), doc: 'Name to check the server certificate against, when it differs from the target host.'},
    },
  },
  channelOptions: {
    schema: (t) => t.Unsafe<Record<string, unknown>>({type: 'object'}),
    shipped: 'channelOptions',
    doc: "grpc-js channel options (grpc.keepalive_time_ms, grpc.service_config, ...). Unknown names are warned about; a service config is checked against gRPC's schema.",
  },
  output: {
    schema: (t) => t.String(),
    default: '{name}-{runId}.jsonl',
    doc: 'Results file, one JSON line per record; {name} and {runId} are replaced. Relative to the job file. Default {name}-{runId}.jsonl in out/ of the working folder (or --out-dir). A path without {runId} is refused when the file already has results (never overwritten).',
    flag: {flags: '-o, --output <file>', help: 'results file; {name} and {runId} are replaced (overrides output)', value: 'path'},
  },
  failures: {
    schema: (t) => t.String(),
    default: '{name}-{runId}.failed.jsonl',
    doc: 'Failed and invalid records exactly as input, re-runnable as input. Relative to the job file. Default {name}-{runId}.failed.jsonl in out/ of the working folder (or --out-dir).',
    flag: {flags: '--failures <file>', help: 'failures file, re-runnable as input (overrides failures)', value: 'path'},
  },
  resultFields: {
    schema: (t) => t.Array(t.String({minLength: 1}), {uniqueItems: true}),
    default: [],
    doc: "Request fields (dotted paths, proto or JSON names) copied into each results line's key, beside the original input line, e.g. [user_id, order.id].",
  },
  schedule: {
    schema: (t) => t.String({minLength: 1}),
    doc: 'Cron expression for grpc-batch daemon: 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first, e.g. "*/15 * * * *". Ignored by grpc-batch run.',
  },
  timezone: {
    schema: (t) => t.String({minLength: 1}),
    doc: "IANA time zone the schedule is read in, e.g. America/New_York. Default: the machine's zone.",
  },
  overlap: {
    schema: (t) => t.Unsafe<'skip' | 'queue' | 'replace' | 'allow'>({type: 'string', enum: ['skip', 'queue', 'replace', 'allow']}),
    default: 'skip',
    doc: 'When a run fires while the previous one is still going: skip it, queue it (at most one waiting), replace the running one (cancelled), or allow both.',
  },
  catchUp: {schema: duration, default: 0, doc: 'On start-up, a tick missed within this window runs once; 0 = never.'},
  jitter: {schema: duration, default: 0, doc: 'Most random delay before a fired run starts; 0 = none.'},
  enabled: {
    schema: (t) => t.Boolean(),
    default: true,
    doc: 'false keeps the job loaded (manual runs work) but never fires it on schedule.',
  },
} as const satisfies Readonly<Record<string, KeyDeclaration>>;

/** The declaration's type, as written (literal defaults kept). */
export type JobKeys = typeof JOB_KEYS;

type Simplify<T> = {[K in keyof T]: T[K]} & {};
type DeepReadonly<T> = T extends (infer E)[]
  ? readonly DeepReadonly<E>[]
  : T extends object
    ? {readonly [K in keyof T]: DeepReadonly<T[K]>}
    : T;
/** The value type of one declared key. */
type ValueOf<D> = D extends {readonly schema: (t: TypeBuilder) => infer S extends TSchema}
  ? DeepReadonly<Static<S>>
  : D extends {readonly keys: infer Keys}
    ? InputOf<Keys>
    : never;
type RequiredKeys<T> = {[K in keyof T]: T[K] extends {readonly required: true} ? K : never}[keyof T];
/** A map of declared keys as written in a job: required keys required, the others optional. */
export type InputOf<T> = Simplify<
  {readonly [K in RequiredKeys<T>]: ValueOf<T[K]>} & {readonly [K in Exclude<keyof T, RequiredKeys<T>>]?: ValueOf<T[K]>}
>;

type WithDefault<T> = {
  [K in keyof T as T[K] extends {readonly default: unknown} ? K : never]: T[K] extends {readonly default: infer V} ? V : never;
};
/** Each top-level key's default, as declared. */
export type JobDefaults = Simplify<WithDefault<JobKeys>>;

/** The top-level defaults of the declaration, by key. */
export function declaredDefaults(): JobDefaults {
  const out: Record<string, unknown> = {};
  for (const [key, declaration] of Object.entries(JOB_KEYS as Readonly<Record<string, KeyDeclaration>>))
    if ('default' in declaration) out[key] = declaration.default;
  return out as JobDefaults;
}

/** One declared key, by its dotted path (`retry.maxAttempts`). */
export interface DeclaredKey {
  readonly path: string;
  readonly declaration: KeyDeclaration;
}

/** Every declared key, depth first, maps before their keys (`retry`, `retry.maxAttempts`, ...). */
export function declaredKeys(keys: Readonly<Record<string, KeyDeclaration>> = JOB_KEYS, prefix = ''): DeclaredKey[] {
  return Object.entries(keys).flatMap(([key, declaration]) => [
    {path: `${prefix}${key}`, declaration},
    ...(declaration.keys ? declaredKeys(declaration.keys, `${prefix}${key}.`) : []),
  ]);
}

/** A flag's commander attribute: `--max-line-bytes` -> `maxLineBytes`. */
export function flagAttribute(flag: FlagDeclaration): string {
  const long = /--([a-z][a-z0-9-]*)/.exec(flag.flags)![1]!;
  return long.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** The long name of a flag: `--max-line-bytes`. */
export function flagName(flag: FlagDeclaration): string {
  return /--[a-z][a-z0-9-]*/.exec(flag.flags)![0];
}

/** The declared keys a flag overrides. */
export function flaggedKeys(): (DeclaredKey & {readonly declaration: {readonly flag: FlagDeclaration}})[] {
  return declaredKeys().filter(
    (k): k is DeclaredKey & {readonly declaration: {readonly flag: FlagDeclaration}} => k.declaration.flag !== undefined,
  );
}
