import {existsSync} from 'node:fs';
import {hostname} from 'node:os';
import path from 'node:path';
import {formatIssue, type Issue, ValidationError} from '../errors.js';
import {expandVariables, type LoadedJob} from '../config/load.js';
import {isTemplate} from '../config/metadata-template.js';
import type {JobSpec} from '../config/spec.js';
import type {TlsSpec} from '../rpc/credentials.js';
import {checkMetadataEntry} from '../rpc/metadata.js';
import type {RetryPolicy} from '../rpc/retry.js';
import {methodToJson, type MethodJson} from './method-json.js';

/**
 * What a run tells its workers, stored in Redis: plain data and nothing secret. `metadata` and
 * `tls` are the job file's own text, `${VAR}` unexpanded: each worker expands them from its own
 * environment and reads the TLS files on its own machine. Requests travel encoded, so a worker
 * needs neither the input nor the .proto file.
 */
export interface ShippedRun {
  readonly job: string;
  readonly runId: string;
  readonly target: string;
  readonly channels: number;
  /** Absent from runs shipped before the key existed: grpc-js. */
  readonly transport?: JobSpec['transport'];
  readonly concurrency: number;
  readonly channelOptions: Readonly<Record<string, unknown>>;
  readonly deadlineMs: number;
  readonly waitForReady: boolean;
  readonly maxOutageMs: number;
  readonly adaptive: boolean;
  readonly rampUpMs: number;
  readonly retry: Omit<RetryPolicy, 'retryableStatusCodes'> & {readonly retryableStatusCodes: readonly number[]};
  /** As written in the job file (unexpanded), or the expanded values of a job made in code. */
  readonly metadata: unknown;
  readonly tls: unknown;
  /** The job file's folder: relative TLS paths are read from it on the worker's machine. */
  readonly jobDir: string;
  readonly method: MethodJson;
  /** Headers and trailers in the result lines (`recordMetadata`). */
  readonly recordMetadata: boolean;
  /** When the run started (ms since the epoch): chunks ramp up over what is left of `rampUp`. */
  readonly startedAt: number;
  /** Where the coordinator runs, for the workers' messages. */
  readonly coordinator: string;
  /** The TTL of the run's keys (results included); absent from runs shipped before it existed: 24h. */
  readonly keysTtlMs?: number;
}

/** The run as its workers see it. */
export function shipRun(job: LoadedJob, runId: string, startedAt = Date.now()): ShippedRun {
  const {spec} = job;
  const {retryableStatusCodes, ...retry} = spec.retry;
  return {
    job: spec.name,
    runId,
    target: spec.target,
    channels: spec.channels,
    transport: spec.transport,
    concurrency: spec.concurrency,
    channelOptions: spec.channelOptions,
    deadlineMs: spec.deadlineMs,
    waitForReady: spec.waitForReady,
    maxOutageMs: spec.maxOutageMs,
    adaptive: spec.adaptive,
    rampUpMs: spec.rampUpMs,
    retry: {...retry, retryableStatusCodes: [...retryableStatusCodes]},
    metadata: job.unexpanded ? job.unexpanded.metadata : spec.metadata,
    tls: job.unexpanded ? job.unexpanded.tls : spec.tls,
    jobDir: job.unexpanded?.dir ?? path.dirname(spec.file),
    method: methodToJson(job.method, spec.method, {jsonNames: spec.jsonNames, emitDefaults: spec.emitDefaults}),
    recordMetadata: spec.recordMetadata,
    startedAt,
    coordinator: `${hostname()} pid ${process.pid}`,
  };
}

/** What a worker runs a chunk with: the shipped run, its secrets resolved here. */
export type WorkerSpec = Pick<
  JobSpec,
  | 'name'
  | 'target'
  | 'tls'
  | 'channelOptions'
  | 'channels'
  | 'transport'
  | 'rampUpMs'
  | 'adaptive'
  | 'retry'
  | 'deadlineMs'
  | 'metadata'
  | 'waitForReady'
  | 'maxOutageMs'
  | 'streams'
  | 'batchSize'
  | 'concurrency'
  | 'recordMetadata'
>;

/**
 * Resolves a shipped run on this machine: `${VAR}` in metadata and TLS from `env`, TLS paths from
 * the job's folder. Throws `ValidationError` naming each key that cannot be resolved here.
 */
export function resolveRun(run: ShippedRun, env: NodeJS.ProcessEnv = process.env): WorkerSpec {
  const issues: Issue[] = [];
  const where = `run ${run.runId} of ${run.job} on ${hostname()}`;
  const metadata: Record<string, string> = {};
  const rawMetadata = expandVariables(run.metadata ?? {}, 'metadata', where, env, issues) as Record<string, unknown>;
  const written = (run.metadata ?? {}) as Record<string, unknown>;
  for (const [key, value] of Object.entries(rawMetadata ?? {})) {
    // A template (recognised as written, before expansion) is filled per record by the coordinator.
    if (typeof written[key] === 'string' && isTemplate(written[key])) continue;
    const text = String(value);
    const problem = checkMetadataEntry(key, text);
    if (problem) issues.push({file: where, path: `metadata.${key}`, message: problem});
    metadata[key.toLowerCase()] = text;
  }
  let tls: TlsSpec | undefined;
  const rawTls = expandVariables(run.tls, 'tls', where, env, issues) as Record<string, unknown> | undefined;
  if (rawTls && typeof rawTls === 'object') {
    const file = (key: 'ca' | 'cert' | 'key') => {
      const value = rawTls[key];
      if (value === undefined || value === null || value === '') return {};
      const resolved = path.resolve(run.jobDir, String(value));
      if (!existsSync(resolved))
        issues.push({
          file: where,
          path: `tls.${key}`,
          message: `file not found on this worker: ${resolved} (TLS files are read on each worker's machine: put them at the same path, or name them with \${VAR})`,
        });
      return {[key]: resolved};
    };
    tls = {...file('ca'), ...file('cert'), ...file('key'), ...(rawTls['serverName'] ? {serverName: String(rawTls['serverName'])} : {})};
  }
  if (issues.length > 0) throw new ValidationError(issues);
  return {
    name: run.job,
    target: run.target,
    tls,
    channelOptions: run.channelOptions,
    channels: run.channels,
    transport: run.transport ?? 'grpc-js',
    rampUpMs: Math.max(0, run.rampUpMs - (Date.now() - run.startedAt)),
    adaptive: run.adaptive,
    retry: {...run.retry, retryableStatusCodes: new Set(run.retry.retryableStatusCodes)},
    deadlineMs: run.deadlineMs,
    metadata,
    waitForReady: run.waitForReady,
    maxOutageMs: run.maxOutageMs,
    // Unary calls only (a distributed run refuses streaming methods); a chunk's share is its own cap.
    streams: undefined,
    batchSize: undefined,
    concurrency: run.concurrency,
    recordMetadata: run.recordMetadata,
  };
}

/** One line per issue, for a chunk's failure reason. */
export function describeIssues(error: ValidationError): string {
  return error.issues.map(formatIssue).join('; ');
}
