import {existsSync, statSync} from 'node:fs';
import path from 'node:path';
import type {ErrorObject} from 'ajv';
import type {Issue} from '../errors.js';
import {DURATION_HINT, parseDuration} from '../util/duration.js';
import {parseStatus, Status, STATUS_NAMES} from '../codec/status.js';
import {checkChannelOptions} from '../rpc/channel-options.js';
import {checkMetadataEntry} from '../rpc/metadata.js';
import {checkKeyPair, checkPem} from '../rpc/pem.js';
import {checkTarget} from '../rpc/target.js';
import {checkH2Job, type TransportName} from '../rpc/h2-transport.js';
import {didYouMean} from '../util/suggest.js';
import {DEFAULT_RETRY} from '../rpc/retry.js';
import {defaultMaxTokens} from '../rpc/retry-throttle.js';
import {autoWorkers} from '../util/cores.js';
import {DEFAULT_OUT_DIR, DEFAULTS, type JobModule, type JobSpec} from './spec.js';
import {checkSchedule} from './schedule-spec.js';
import {DEFAULT_MAX_LINE_BYTES} from '../io/input.js';
import {compressionOf, unsupportedCompression} from '../io/compression.js';
import {isTemplate, parseTemplate, type MetadataTemplate} from './metadata-template.js';
import {MAX_LINE_BYTES, parseSize, SIZE_HINT} from '../util/size.js';
import {checkJobSchema} from './job-schema.js';

const FUNCTION_KEYS = ['requests', 'onResult'] as const;

export interface ValidateOptions {
  /** Folder of the default results and failures files. @default ./out */
  readonly outDir?: string;
  /**
   * The templated `metadata` values, as recognised in the job's text before `${VAR}` expansion
   * (by the lowercased key; a string is why one is malformed): no other value is a template.
   * @default every value holding `{{` (a job made in code, never expanded)
   */
  readonly metadataTemplates?: ReadonlyMap<string, MetadataTemplate | string>;
}

/**
 * Checks a raw job (parsed file or module export, `${VAR}`s already replaced) and resolves it into a
 * `JobSpec`. Returns every issue found (errors and warnings); `spec` is set only when there is no
 * error. Paths are resolved from `baseDir`. The method itself is checked by the loader.
 */
export function validateJob(raw: unknown, file: string, baseDir: string, options: ValidateOptions = {}): {spec?: JobSpec; issues: Issue[]} {
  const issues: Issue[] = [];
  const error = (keyPath: string, message: string) => issues.push({file, path: keyPath, message});
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    error(
      '',
      `expected a job (a map of keys like target, proto, method, input), got ${raw === null ? 'null' : Array.isArray(raw) ? 'a list' : typeof raw}`,
    );
    return {issues};
  }
  const job = {...(raw as Record<string, unknown>)};
  const functions: Record<string, unknown> = {};
  for (const key of FUNCTION_KEYS) {
    if (key in job) {
      functions[key] = job[key];
      delete job[key];
      if (typeof functions[key] !== 'function') error(key, `expected a function, got ${typeof functions[key]}`);
    }
  }

  if (!checkJobSchema(job)) {
    // The known keys of a map are listed once, on its first unknown key that has no did-you-mean.
    const listed = new Set<string>();
    for (const e of dedupe(checkJobSchema.errors ?? []))
      issues.push({file, path: keyPathOf(e), message: describeSchemaError(e, job, listed)});
  }

  // Semantics the schema cannot say.
  const durations: Record<string, number> = {};
  const duration = (keyPath: string, value: unknown, fallback: string | number) => {
    if (issues.some((i) => i.path === keyPath)) return void (durations[keyPath] = 0);
    const ms = parseDuration(value ?? fallback);
    if (ms === undefined) error(keyPath, `expected ${DURATION_HINT}; got ${show(value)}`);
    durations[keyPath] = ms ?? 0;
  };
  const retry = (job['retry'] ?? {}) as Record<string, unknown>;
  duration('deadline', job['deadline'], DEFAULTS.deadline);
  duration('maxOutage', job['maxOutage'], DEFAULTS.maxOutage);
  duration('rampUp', job['rampUp'], DEFAULTS.rampUp);
  duration('retry.initialBackoff', retry['initialBackoff'], DEFAULT_RETRY.initialBackoffMs);
  duration('retry.maxBackoff', retry['maxBackoff'], DEFAULT_RETRY.maxBackoffMs);
  const codes = new Set<number>();
  const rawCodes = Array.isArray(retry['retryableStatusCodes']) ? retry['retryableStatusCodes'] : ['UNAVAILABLE'];
  rawCodes.forEach((value: unknown, index: number) => {
    const code = parseStatus(value);
    if (code === undefined) {
      error(
        `retry.retryableStatusCodes[${index}]`,
        `expected a status name like UNAVAILABLE or a number 0-16, got ${show(value)}${typeof value === 'string' ? didYouMean(value.toUpperCase(), STATUS_NAMES) : ''}`,
      );
    } else if (code === Status.OK) {
      error(`retry.retryableStatusCodes[${index}]`, 'OK is not a failure and cannot be retried');
    } else codes.add(code);
  });
  const hasIssue = (keyPath: string) => issues.some((i) => i.path === keyPath);
  if (
    retry['maxBackoff'] !== undefined &&
    !hasIssue('retry.maxBackoff') &&
    !hasIssue('retry.initialBackoff') &&
    durations['retry.maxBackoff']! < durations['retry.initialBackoff']!
  ) {
    error(
      'retry.maxBackoff',
      `expected a duration no shorter than retry.initialBackoff (${durations['retry.initialBackoff']}ms), got ${show(retry['maxBackoff'])}`,
    );
  }

  const resolvePath = (value: unknown) => (typeof value === 'string' && value !== '-' ? path.resolve(baseDir, value) : value);
  const mustExist = (keyPath: string, value: unknown) => {
    if (typeof value !== 'string' || value === '-') return;
    const full = path.resolve(baseDir, value);
    if (!existsSync(full)) error(keyPath, `file not found: ${full}`);
    else if (statSync(full).isDirectory()) error(keyPath, `expected a file, got a folder: ${full}`);
  };
  const fileList = (key: string): string[] => {
    const value = job[key];
    const list = typeof value === 'string' ? [value] : Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
    list.forEach((file, index) => mustExist(Array.isArray(value) ? `${key}[${index}]` : key, file));
    return list;
  };
  const protoFiles = fileList('proto');
  const protosetFiles = fileList('protoset');
  if (job['proto'] !== undefined && job['protoset'] !== undefined) {
    error('protoset', 'give proto or protoset, not both: they are two sources of the same schema');
  }
  if (job['importPaths'] !== undefined && job['proto'] === undefined) {
    issues.push({
      file,
      path: 'importPaths',
      message: 'only used with proto (a protoset holds its imports; reflection asks the server); ignored',
      severity: 'warning',
    });
  }
  if (job['reflectionMetadata'] !== undefined && (job['proto'] !== undefined || job['protoset'] !== undefined)) {
    issues.push({
      file,
      path: 'reflectionMetadata',
      message: `only used with server reflection, that is without proto or protoset; ignored`,
      severity: 'warning',
    });
  }
  let maxLineBytes = DEFAULT_MAX_LINE_BYTES;
  if (job['maxLineBytes'] !== undefined && !hasIssue('maxLineBytes')) {
    const bytes = parseSize(job['maxLineBytes']);
    if (bytes === undefined) error('maxLineBytes', `expected ${SIZE_HINT}, got ${show(job['maxLineBytes'])}`);
    else if (bytes > MAX_LINE_BYTES)
      error(
        'maxLineBytes',
        `expected at most 512MiB (${MAX_LINE_BYTES} bytes, the longest string Node can hold), got ${show(job['maxLineBytes'])}`,
      );
    else maxLineBytes = bytes;
  }
  mustExist('input', job['input']);
  if (typeof job['input'] === 'string' && job['input'] !== '-' && !hasIssue('input')) {
    const full = path.resolve(baseDir, job['input']);
    const compression = compressionOf(full);
    if (compression && compression !== 'gzip') error('input', unsupportedCompression(full, compression));
  }
  if (typeof job['target'] === 'string' && !hasIssue('target')) {
    const problem = checkTarget(job['target']);
    if (problem) error('target', problem);
  }
  const tls = job['tls'] as Record<string, unknown> | undefined;
  if (tls && typeof tls === 'object') {
    for (const key of ['ca', 'cert', 'key'] as const) {
      mustExist(`tls.${key}`, tls[key]);
      if (typeof tls[key] === 'string' && !hasIssue(`tls.${key}`)) {
        const problem = checkPem(path.resolve(baseDir, tls[key] as string), key);
        if (problem) error(`tls.${key}`, problem);
      }
    }
    if (Boolean(tls['cert']) !== Boolean(tls['key']))
      error(tls['cert'] ? 'tls.key' : 'tls.cert', 'mutual TLS needs both tls.cert and tls.key');
    else if (typeof tls['cert'] === 'string' && typeof tls['key'] === 'string' && !hasIssue('tls.cert') && !hasIssue('tls.key')) {
      const problem = checkKeyPair(path.resolve(baseDir, tls['cert']), path.resolve(baseDir, tls['key']));
      if (problem) error('tls.key', problem);
    }
  }
  if (job['input'] === undefined && functions['requests'] === undefined) {
    error('input', 'missing: give a JSONL file (input: ./requests.jsonl), --input FILE, or --input - for stdin');
  }
  if (job['metadata'] && typeof job['metadata'] === 'object') {
    for (const [key, value] of Object.entries(job['metadata'] as Record<string, unknown>)) {
      if (!['string', 'number', 'boolean'].includes(typeof value)) continue; // the schema has said it
      const template = options.metadataTemplates
        ? options.metadataTemplates.get(key.toLowerCase())
        : typeof value === 'string' && isTemplate(value)
          ? parseTemplate(key.toLowerCase(), value)
          : undefined;
      if (typeof template === 'string') error(`metadata.${key}`, template);
      // A template is checked once filled, per record; its fixed parts must be sendable already.
      const problem = checkMetadataEntry(
        key,
        typeof template === 'object' ? template.parts.filter((p) => typeof p === 'string').join('') : String(value),
      );
      if (problem) error(`metadata.${key}`, problem);
    }
  }
  if (job['reflectionMetadata'] && typeof job['reflectionMetadata'] === 'object') {
    for (const [key, value] of Object.entries(job['reflectionMetadata'] as Record<string, unknown>)) {
      if (!['string', 'number', 'boolean'].includes(typeof value)) continue;
      const problem = checkMetadataEntry(key, String(value));
      if (problem) error(`reflectionMetadata.${key}`, problem);
    }
  }
  if (job['channelOptions'] !== undefined) issues.push(...checkChannelOptions(job['channelOptions'], file));
  if (job['transport'] === 'h2' && typeof job['target'] === 'string' && !hasIssue('target')) {
    const options =
      job['channelOptions'] !== null && typeof job['channelOptions'] === 'object' ? (job['channelOptions'] as Record<string, unknown>) : {};
    for (const [key, message] of checkH2Job(job['target'], options)) error(key, message);
  }
  const {schedule, issues: scheduleIssues} = checkSchedule(job, file, new Set(issues.map((i) => i.path)));
  issues.push(...scheduleIssues);

  if (issues.some((i) => i.severity !== 'warning')) return {issues};

  const metadata: Record<string, string> = {};
  for (const [key, value] of Object.entries((job['metadata'] ?? {}) as Record<string, unknown>))
    metadata[key.toLowerCase()] = String(value);
  const tlsSpec = tls
    ? {
        ...(tls['ca'] ? {ca: resolvePath(tls['ca']) as string} : {}),
        ...(tls['cert'] ? {cert: resolvePath(tls['cert']) as string} : {}),
        ...(tls['key'] ? {key: resolvePath(tls['key']) as string} : {}),
        ...(tls['serverName'] ? {serverName: tls['serverName'] as string} : {}),
      }
    : undefined;
  const channelOptions = {...((job['channelOptions'] ?? {}) as Record<string, unknown>)};
  if (tlsSpec?.serverName) channelOptions['grpc.ssl_target_name_override'] = tlsSpec.serverName;

  const spec: JobSpec = {
    name: (job['name'] as string | undefined) ?? path.basename(file).replace(/\.(ya?ml|json|[cm]?[jt]s)$/i, ''),
    file,
    target: job['target'] as string,
    proto: protoFiles.map((p) => path.resolve(baseDir, p)),
    importPaths: ((job['importPaths'] ?? []) as string[]).map((p) => path.resolve(baseDir, p)),
    protoset: protosetFiles.map((p) => path.resolve(baseDir, p)),
    reflectionMetadata: job['reflectionMetadata'] ? lowerKeys(job['reflectionMetadata'] as Record<string, unknown>) : undefined,
    method: job['method'] as string,
    input: resolvePath(job['input']) as string | undefined,
    inputFormat: (job['inputFormat'] as 'message' | 'envelope' | undefined) ?? DEFAULTS.inputFormat,
    maxLineBytes,
    recordMetadata: (job['recordMetadata'] as boolean | undefined) ?? DEFAULTS.recordMetadata,
    jsonNames: (job['jsonNames'] as 'json' | 'proto' | undefined) ?? DEFAULTS.jsonNames,
    emitDefaults: (job['emitDefaults'] as boolean | undefined) ?? DEFAULTS.emitDefaults,
    requests: functions['requests'] as JobModule['requests'],
    onResult: functions['onResult'] as JobModule['onResult'],
    concurrency: (job['concurrency'] as number | undefined) ?? DEFAULTS.concurrency,
    rps: (job['rps'] as number | undefined) ?? DEFAULTS.rps,
    deadlineMs: durations['deadline']!,
    waitForReady: (job['waitForReady'] as boolean | undefined) ?? DEFAULTS.waitForReady,
    maxOutageMs: durations['maxOutage']!,
    adaptive: (job['adaptive'] as boolean | undefined) ?? DEFAULTS.adaptive,
    rampUpMs: durations['rampUp']!,
    channels: (job['channels'] as number | undefined) ?? DEFAULTS.channels,
    transport: (job['transport'] as TransportName | undefined) ?? DEFAULTS.transport,
    streams: job['streams'] as number | undefined,
    batchSize: job['batchSize'] as number | undefined,
    maxRepliesPerRecord: job['maxRepliesPerRecord'] as number | undefined,
    workersSetting: (job['workers'] as number | 'auto' | undefined) ?? DEFAULTS.workers,
    workers: resolveWorkers(job['workers'], (job['concurrency'] as number | undefined) ?? DEFAULTS.concurrency, job['adaptive'] === true),
    retry: {
      maxAttempts: (retry['maxAttempts'] as number | undefined) ?? DEFAULT_RETRY.maxAttempts,
      initialBackoffMs: durations['retry.initialBackoff']!,
      maxBackoffMs: durations['retry.maxBackoff']!,
      backoffMultiplier: (retry['backoffMultiplier'] as number | undefined) ?? DEFAULT_RETRY.backoffMultiplier,
      retryableStatusCodes: codes,
      ...(retry['throttle']
        ? {
            throttle: resolveThrottle(
              retry['throttle'] as Record<string, number>,
              (job['concurrency'] as number | undefined) ?? DEFAULTS.concurrency,
            ),
          }
        : {}),
    },
    maxInvalid: job['maxInvalid'] as number | undefined,
    onInterrupted: (job['onInterrupted'] as 'resume' | 'abandon' | undefined) ?? DEFAULTS.onInterrupted,
    maxFailures: job['maxFailures'] as number | undefined,
    metadata,
    ...(options.metadataTemplates
      ? {metadataTemplates: [...options.metadataTemplates.values()].filter((t): t is MetadataTemplate => typeof t === 'object')}
      : {}),
    tls: tlsSpec,
    channelOptions,
    // Default files go to the out folder (the working folder's out/ unless --out-dir), never next to
    // the job file, which may be read-only (a ConfigMap); paths the job gives are the job's own.
    output:
      job['output'] !== undefined
        ? path.resolve(baseDir, job['output'] as string)
        : path.resolve(options.outDir ?? DEFAULT_OUT_DIR, DEFAULTS.output),
    resultFields: (job['resultFields'] as string[] | undefined) ?? DEFAULTS.resultFields,
    failures:
      job['failures'] !== undefined
        ? path.resolve(baseDir, job['failures'] as string)
        : path.resolve(options.outDir ?? DEFAULT_OUT_DIR, DEFAULTS.failures),
    schedule,
  };
  return {spec, issues};
}

function lowerKeys(entries: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(entries)) out[key.toLowerCase()] = String(value);
  return out;
}

/**
 * `auto` (the default): one worker per core for each ~100 calls in flight; one thread under
 * `adaptive`, whose one limit then sees every latency and every shed call (two limits, each seeing
 * half, probed the backend twice as hard: 10% of the records shed against 3% in test/run/flow).
 */
function resolveWorkers(raw: unknown, concurrency: number, adaptive: boolean): number {
  if (typeof raw === 'number') return Math.min(raw, concurrency);
  return adaptive ? 1 : autoWorkers(concurrency);
}

function resolveThrottle(raw: Record<string, number>, concurrency: number): {maxTokens: number; tokenRatio: number} {
  return {maxTokens: raw['maxTokens'] ?? defaultMaxTokens(concurrency), tokenRatio: raw['tokenRatio'] ?? 1};
}

function keyPathOf(e: ErrorObject): string {
  const base = e.instancePath
    .split('/')
    .slice(1)
    .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((acc, part) => (/^\d+$/.test(part) ? `${acc}[${part}]` : acc ? `${acc}.${part}` : part), '');
  if (e.keyword === 'additionalProperties') {
    const extra = (e.params as {additionalProperty: string}).additionalProperty;
    return base ? `${base}.${extra}` : extra;
  }
  if (e.keyword === 'required') {
    const missing = (e.params as {missingProperty: string}).missingProperty;
    return base ? `${base}.${missing}` : missing;
  }
  return base;
}

function describeSchemaError(e: ErrorObject, job: Record<string, unknown>, listed: Set<string>): string {
  const value = e.instancePath
    .split('/')
    .slice(1)
    .reduce<unknown>((v, k) => (v as Record<string, unknown> | undefined)?.[k.replace(/~1/g, '/')], job);
  const got = `got ${show(value)}`;
  switch (e.keyword) {
    case 'additionalProperties': {
      const extra = (e.params as {additionalProperty: string}).additionalProperty;
      const known = Object.keys((e.parentSchema as {properties?: object} | undefined)?.properties ?? {}).filter((k) => k !== '$schema');
      const hint = didYouMean(extra, known);
      if (hint || listed.has(e.instancePath)) return `unknown key${hint}`;
      listed.add(e.instancePath);
      return `unknown key; known keys${e.instancePath ? ` here` : ''}: ${known.join(', ')}`;
    }
    case 'required':
      return `missing required key${hintFor((e.params as {missingProperty: string}).missingProperty)}`;
    case 'type':
      return `expected ${article((e.params as {type: string}).type)}, ${got}`;
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
      return `expected ${range(e.parentSchema as NumberSchema)}, ${got}`;
    case 'minLength':
      return `expected a non-empty string, ${got}`;
    case 'minItems':
      return `expected a list of at least ${(e.params as {limit: number}).limit} item(s), ${got}`;
    case 'pattern':
      return e.instancePath === '/name' ? `expected letters, digits, '.', '_' or '-' (used in file names), ${got}` : `${e.message}, ${got}`;
    case 'enum':
      return `expected one of ${((e.params as {allowedValues: unknown[]}).allowedValues).join(', ')}, ${got}`;
    case 'anyOf':
      if (e.instancePath === '/maxLineBytes') return `expected ${SIZE_HINT}, ${got}`;
      if (e.instancePath === '/proto' || e.instancePath === '/protoset') return `expected a file or a non-empty list of files, ${got}`;
      if (e.instancePath === '/workers') return `expected an integer from 1 to 256 or "auto", ${got}`;
      return `expected ${DURATION_HINT}; ${got}`;
    default:
      return `${e.message ?? 'is invalid'}, ${got}`;
  }
}

/** `"ten seconds" (string)`, `[1,2] (list)`, `null`: the value as written, cut at 60 characters. */
export function show(value: unknown): string {
  if (value === null) return 'null';
  const type = Array.isArray(value) ? 'list' : typeof value === 'object' ? 'map' : typeof value;
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = type;
  }
  return `${text.length > 60 ? `${text.slice(0, 60)}…` : text} (${type})`;
}

function hintFor(key: string): string {
  const hints: Record<string, string> = {
    target: ' (the server address, e.g. target: 127.0.0.1:50051)',
    proto: ' (the .proto file, e.g. proto: ./service.proto)',
    method: ' (e.g. method: package.Service/Method)',
  };
  return hints[key] ?? '';
}

function article(type: string | readonly string[]): string {
  const words: Record<string, string> = {
    integer: 'an integer',
    number: 'a number',
    string: 'a string',
    boolean: 'true or false',
    object: 'a map',
    array: 'a list',
    null: 'null',
  };
  return (Array.isArray(type) ? type : String(type).split(',')).map((t) => words[t] ?? t).join(' or ');
}

interface NumberSchema {
  type?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
}

/** `an integer from 1 to 64`, `a number from 0 and up`. */
function range(schema: NumberSchema | undefined): string {
  const kind = article(schema?.type ?? 'number');
  const min = schema?.minimum;
  const max = schema?.maximum;
  if (schema?.exclusiveMinimum !== undefined) return `${kind} above ${schema.exclusiveMinimum}`;
  if (min !== undefined && max !== undefined) return `${kind} from ${min} to ${max}`;
  if (min !== undefined) return `${kind} from ${min} and up`;
  if (max !== undefined) return `${kind} up to ${max}`;
  return kind;
}

/** anyOf reports each branch too; keep one line per key path. */
function dedupe(errors: ErrorObject[]): ErrorObject[] {
  const byPath = new Map<string, ErrorObject>();
  for (const e of errors) {
    const key = keyPathOf(e);
    const existing = byPath.get(key);
    if (!existing || e.keyword === 'anyOf' || e.keyword === 'additionalProperties' || e.keyword === 'required') byPath.set(key, e);
  }
  return [...byPath.values()];
}
