import {createHash} from 'node:crypto';
import {statSync} from 'node:fs';
import path from 'node:path';
import {UsageError} from '../errors.js';
import {isThresholdStop} from '../stop-reason.js';
import {countLinesUpTo, hashFilePrefix} from '../io/input-digest.js';
import {readsStdin} from '../io/input.js';
import type {JobOverrides, LoadedJob} from '../config/load.js';
import {moduleResumeProblem} from '../io/record-identity.js';
import {runFiles} from '../io/results.js';
import {deadRunIds, reclaimDeadRuns} from './lease.js';
import type {RecordedJob, RecordedSpec, ResumeInfo, RunRecord, StateStore} from './store.js';
import {flagAttribute, flaggedKeys} from '../config/job-keys.js';

/** A run that `maxFailures` or `maxInvalid` stopped: recorded `failed`, with its records after the stop never sent. */
export function isThresholdAbort(run: Pick<RunRecord, 'status' | 'stop'>): boolean {
  return run.status === 'failed' && isThresholdStop(run.stop);
}

/** The job's newest run that can be continued: interrupted, cancelled, ended by an error, or stopped by a threshold. */
function newestResumable(store: StateStore, job: string): RunRecord | undefined {
  const unfinished = store.findResumableRun(job);
  const aborted = store.listRuns({job, status: 'failed', limit: 50}).find((run) => isThresholdAbort(run) && store.getResumeInfo(run.runId));
  if (!unfinished || !aborted) return unfinished ?? aborted;
  return aborted.createdAt > unfinished.createdAt ? aborted : unfinished;
}

/** What run `runId` of a job records when it starts so that `--resume` and the daemon can continue it as it started. */
export function resumeInfoFor(job: LoadedJob, runId: string): ResumeInfo {
  const {spec} = job;
  const stdin = readsStdin(spec.input);
  const input = spec.input;
  const stat = input && !stdin ? statSync(input, {throwIfNoEntry: false}) : undefined;
  const recorded: RecordedSpec = {
    target: spec.target,
    concurrency: spec.concurrency,
    rps: spec.rps,
    deadlineMs: spec.deadlineMs,
    maxAttempts: spec.retry.maxAttempts,
    maxLineBytes: spec.maxLineBytes,
    maxFailures: spec.maxFailures ?? null,
    maxInvalid: spec.maxInvalid ?? null,
    workers: spec.workers,
    maxOutageMs: spec.maxOutageMs,
    adaptive: spec.adaptive,
    rampUpMs: spec.rampUpMs,
  };
  return {
    jobFile: path.resolve(spec.file),
    input,
    inputSize: stat?.size,
    inputMtimeMs: stat ? Math.round(stat.mtimeMs) : undefined,
    inputIsStream: stdin || (stat !== undefined && !stat.isFile()),
    spec: recorded,
    job: recordedJob(job),
    ...runFiles(spec, runId),
  };
}

/** Metadata keys whose values a job module may compute from a secret: compared by presence only (a rotated token is no change). */
const CREDENTIAL_KEY = /auth|cookie|token|secret|password|passwd|api-?key|session/i;

/** What a run sends, as `--resume` compares it: the method, request type, input format, and a hash of each metadata value as written. */
export function recordedJob(job: LoadedJob): RecordedJob {
  const {spec, method} = job;
  const module = spec.requests !== undefined || /\.[cm]?[jt]s$/i.test(spec.file);
  const written = job.unexpanded?.metadata;
  const asWritten =
    written !== null && typeof written === 'object' ? new Map(Object.entries(written).map(([k, v]) => [k.toLowerCase(), v])) : undefined;
  const metadata: Record<string, string> = {};
  for (const [key, value] of Object.entries(spec.metadata)) {
    // A job file's value as written (`${TOKEN}`, not the token): an expanded secret never reaches the state database.
    const source = asWritten?.has(key.toLowerCase()) ? String(asWritten.get(key.toLowerCase())) : value;
    metadata[key] = module && CREDENTIAL_KEY.test(key) ? 'set' : createHash('sha256').update(source).digest('hex').slice(0, 16);
  }
  return {method: method.name, requestType: method.requestType, inputFormat: spec.inputFormat, metadata};
}

/** What changed in what the job sends since run `runId` recorded it, named (values of metadata are not shown), or undefined. */
export function jobChange(runId: string, recorded: RecordedJob | undefined, job: LoadedJob): string | undefined {
  if (!recorded) return undefined;
  const now = recordedJob(job);
  const changes: string[] = [];
  if (now.method !== recorded.method) changes.push(`method changed since run ${runId} started: ${recorded.method} -> ${now.method}`);
  else if (now.requestType !== recorded.requestType)
    changes.push(`the request type changed since run ${runId} started: ${recorded.requestType} -> ${now.requestType}`);
  if (now.inputFormat !== recorded.inputFormat)
    changes.push(`inputFormat changed since run ${runId} started: ${recorded.inputFormat} -> ${now.inputFormat}`);
  const keys: string[] = [];
  for (const [key, hash] of Object.entries(recorded.metadata)) {
    if (!(key in now.metadata)) keys.push(`${key} removed`);
    else if (now.metadata[key] !== hash) keys.push(`${key} changed`);
  }
  for (const key of Object.keys(now.metadata)) if (!(key in recorded.metadata)) keys.push(`${key} added`);
  if (keys.length > 0) changes.push(`metadata changed since run ${runId} started: ${keys.join(', ')}`);
  return changes.length > 0 ? changes.join('; ') : undefined;
}

/**
 * The job as run `info` started it: its files and input, and the target, concurrency, rps,
 * deadline and maxAttempts it was started with (flags included), except the keys in `given`
 * (flags given now, which win). No reload: the proto is not parsed again.
 */
export function asRecorded(job: LoadedJob, info: ResumeInfo, given: ReadonlySet<keyof RecordedSpec> = new Set()): LoadedJob {
  const recorded = info.spec;
  const pick = <K extends keyof RecordedSpec>(key: K, current: NonNullable<RecordedSpec[K]>): NonNullable<RecordedSpec[K]> =>
    recorded && !given.has(key) && recorded[key] !== undefined && recorded[key] !== null
      ? (recorded[key] as NonNullable<RecordedSpec[K]>)
      : current;
  /** A limit recorded as null was no limit. */
  const limit = (key: 'maxFailures' | 'maxInvalid', current: number | undefined): number | undefined =>
    recorded && !given.has(key) && recorded[key] !== undefined ? (recorded[key] ?? undefined) : current;
  const spec = job.spec;
  return {
    ...job,
    spec: {
      ...spec,
      output: info.output,
      failures: info.failures,
      ...(info.input ? {input: info.input, requests: undefined} : {}), // a module run given --input read that file
      target: pick('target', spec.target),
      concurrency: pick('concurrency', spec.concurrency),
      rps: pick('rps', spec.rps),
      deadlineMs: pick('deadlineMs', spec.deadlineMs),
      retry: {...spec.retry, maxAttempts: pick('maxAttempts', spec.retry.maxAttempts)},
      maxLineBytes: pick('maxLineBytes', spec.maxLineBytes),
      maxFailures: limit('maxFailures', spec.maxFailures),
      maxInvalid: limit('maxInvalid', spec.maxInvalid),
      workers: pick('workers', spec.workers),
      maxOutageMs: pick('maxOutageMs', spec.maxOutageMs),
      adaptive: pick('adaptive', spec.adaptive),
      rampUpMs: pick('rampUpMs', spec.rampUpMs),
    },
  };
}

/**
 * Finds the run to resume (`runId`, or the job's newest unfinished run), checks it can be resumed
 * (finished runs, runs still going and changed input are refused, with what to do instead), and
 * returns it with where it reads and writes. It claims nothing: `StateStore#claimRun` does, with
 * the run's files locked.
 */
export function findRunToResume(
  store: StateStore,
  job: LoadedJob,
  runId: string | undefined,
  given: ReadonlySet<keyof RecordedSpec> = new Set(),
): {runId: string; info: ResumeInfo; overrides: JobOverrides} {
  const name = job.spec.name;
  // Runs recorded as running whose owner is gone (files no longer locked here), looked at without a
  // write: the run to resume is claimed (`claimRun`), never marked, so a resume refused after this
  // (another coordinator holds a distributed run's lease, on a host whose locks this one cannot see)
  // leaves the run as it was. The others are marked interrupted once the run to resume is found.
  const gone = new Set(deadRunIds(store));
  const deadRunning = [...gone]
    .map((id) => store.getRun(id))
    .filter((r): r is RunRecord => r !== undefined && r.job === name && store.getResumeInfo(r.runId) !== undefined);
  const newest = [newestResumable(store, name), ...deadRunning]
    .filter((r): r is RunRecord => r !== undefined)
    .sort((a, b) => b.createdAt - a.createdAt)[0];
  // Without a run id, a run of the job that is going now is the one meant: refuse it by name.
  const run = runId ? store.getRun(runId) : (newest ?? store.listRuns({job: name, status: 'running', limit: 1})[0]);
  reclaimDeadRuns(store, Date.now(), run?.runId);
  if (!run) {
    throw new UsageError(
      runId
        ? `run ${runId} is not in the state database ${store.path} (see grpc-batch history --state ${store.path})`
        : `no unfinished run of job "${name}" to resume in ${store.path}; grpc-batch history --job ${name} lists its runs`,
    );
  }
  if (run.job !== name) throw new UsageError(`run ${run.runId} belongs to job "${run.job}", not "${name}"`);
  if (run.status === 'running' && !gone.has(run.runId)) {
    const beat =
      run.heartbeatAt !== undefined ? `, lease renewed ${Math.max(0, Math.round((Date.now() - run.heartbeatAt) / 1000))}s ago` : '';
    throw new UsageError(`run ${run.runId} is still running (pid ${run.pid} on ${run.host}${beat}); stop it first, or wait for it to end`);
  }
  if ((run.status === 'succeeded' || run.status === 'failed' || run.status === 'skipped') && !isThresholdAbort(run)) {
    const hint =
      run.status === 'failed' && run.failures ? `; to re-send its failed records: grpc-batch run ... --input ${run.failures}` : '';
    throw new UsageError(`run ${run.runId} is finished (${run.status}); there is nothing to resume${hint}`);
  }
  const info = store.getResumeInfo(run.runId);
  if (!info) throw new UsageError(`run ${run.runId} has no checkpoint (it was recorded by an older grpc-batch) and cannot be resumed`);
  // The limits it resumes with: those it started with (flags included), or the flags given now.
  const limits = overLimits(run, asRecorded(job, info, given));
  if (limits)
    throw new UsageError(
      `run ${run.runId} already has ${limits}; resuming it would stop again at once: raise the limit for this run with ${limits.includes('failed') ? `--max-failures ${Math.max(2 * (run.failed ?? 0), 10)}` : `--max-invalid ${Math.max(2 * (run.invalid ?? 0), 10)}`}`,
    );
  if (info.inputIsStream) throw new UsageError(streamRefusal(run.runId, info));
  const noKey = moduleResumeProblem(job.spec, run.runId, info.input);
  if (noKey) throw new UsageError(noKey);
  const sends = jobChange(run.runId, info.job, job);
  if (sends)
    throw new UsageError(
      `${sends}; resuming would send the rest of its records differently under the same run: start a new run (without --resume)`,
    );
  const changed = inputChange(run.runId, info) ?? resultsLost(run.runId, info);
  if (changed) throw new UsageError(changed);
  return {runId: run.runId, info, overrides: {output: info.output, failures: info.failures, ...(info.input ? {input: info.input} : {})}};
}

/** The threshold a stored run is already past under the job's limits (flags included), or undefined. */
function overLimits(run: RunRecord, job: LoadedJob): string | undefined {
  const {maxFailures, maxInvalid} = job.spec;
  if (maxFailures !== undefined && (run.failed ?? 0) > maxFailures)
    return `${run.failed} failed records, more than maxFailures (${maxFailures})`;
  if (maxInvalid !== undefined && (run.invalid ?? 0) > maxInvalid)
    return `${run.invalid} invalid records, more than maxInvalid (${maxInvalid})`;
  return undefined;
}

/** Why a run that read a stream cannot be resumed. */
export function streamRefusal(runId: string, info: ResumeInfo): string {
  const what = readsStdin(info.input) ? 'standard input' : `${info.input}, a pipe or device`;
  return `run ${runId} read ${what}: its records are gone and it cannot be resumed; save the input to a file and start a new run`;
}

/**
 * Why a run's input can no longer be resumed from (gone, or changed since the run started), or
 * undefined when it can. Compared: the size it had, and the SHA-256 of the bytes the run read (a
 * record with a result is matched by its line: an edited line would be skipped, or sent twice).
 * Its mtime is not: a file copied back as it was can be resumed.
 */
export function inputChange(runId: string, info: ResumeInfo): string | undefined {
  if (!info.input) return undefined;
  const now = statSync(info.input, {throwIfNoEntry: false});
  if (!now) return `run ${runId} read ${info.input}, which is gone; it cannot be resumed: put it back, or start a new run`;
  if (info.inputSize !== undefined && now.size !== info.inputSize) {
    return `the input ${info.input} changed since run ${runId} started (size ${info.inputSize} -> ${now.size} bytes); resuming would skip the wrong records. Start a new run instead`;
  }
  if (info.inputRead && info.inputRead.bytes > 0 && hashFilePrefix(info.input, info.inputRead.bytes) !== info.inputRead.sha256) {
    return `the input ${info.input} changed since run ${runId} started: its first ${info.inputRead.bytes} bytes, which the run read, are not the same (SHA-256 differs); resuming would skip the wrong records. Start a new run instead`;
  }
  return undefined;
}

/**
 * Why a run cannot be resumed because its results file is gone or shorter than the state
 * database recorded at its last checkpoint (resuming would send those records again), or undefined.
 */
export function resultsLost(runId: string, info: ResumeInfo): string | undefined {
  const recorded = info.results;
  if (recorded === undefined || recorded === 0) return undefined;
  const lines = countLinesUpTo(info.output, recorded);
  if (lines === undefined) {
    return `run ${runId}'s results file ${info.output} is gone, but the state database recorded ${recorded} results in it: resuming would send those ${recorded} records again. Put the file back, or start a new run (without --resume)`;
  }
  if (lines < recorded) {
    return `run ${runId}'s results file ${info.output} has ${lines} result lines, but the state database recorded ${recorded} at the run's last checkpoint: resuming would send ${recorded - lines} records again. Put the whole file back, or start a new run (without --resume)`;
  }
  return undefined;
}

/**
 * Flags given with `--resume` that the run cannot honour, refused (exit 2) rather than ignored: an
 * other input (records are matched to results by line), other results or failures files.
 */
export function refuseUnhonouredFlags(
  flags: Pick<JobOverrides, 'input' | 'output' | 'failures' | 'outDir'>,
  job: LoadedJob,
  runId: string,
  info: ResumeInfo,
): void {
  if (flags.input !== undefined && (readsStdin(flags.input) || path.resolve(flags.input) !== info.input)) {
    const was = info.input === undefined ? "its job module's requests()" : readsStdin(info.input) ? 'standard input' : info.input;
    throw new UsageError(
      `--input ${flags.input} cannot be given with --resume: run ${runId} read ${was}, and its records are matched to their results by line, so another input would skip the wrong records. Resume without --input, or start a new run for ${flags.input} (without --resume)`,
    );
  }
  const files = runFiles(job.spec, runId);
  for (const [flag, key] of [
    ['--output', 'output'],
    ['--failures', 'failures'],
    ['--out-dir', 'output'],
  ] as const) {
    const value = flag === '--out-dir' ? flags.outDir : flags[key];
    if (value === undefined) continue;
    const now = flag === '--out-dir' ? [files.output, files.failures] : [files[key]];
    const was = flag === '--out-dir' ? [info.output, info.failures] : [info[key]];
    if (now.some((file, i) => file !== was[i])) {
      throw new UsageError(
        `${flag} ${value} cannot be given with --resume: run ${runId} writes ${was.join(' and ')}, which it appends to. Resume without ${flag}, or start a new run (without --resume)`,
      );
    }
  }
}

/** The recorded keys that flags given now override (`-t`, `-c`, `--max-line-bytes`, `--workers`...: each key declared `recorded` in src/config/job-keys.ts). */
export function givenSpecKeys(flags: JobOverrides): Set<keyof RecordedSpec> {
  const given = new Set<keyof RecordedSpec>();
  for (const {
    declaration: {flag, recorded},
  } of flaggedKeys()) {
    if (recorded !== undefined && (flags as Record<string, unknown>)[flagAttribute(flag)] !== undefined)
      given.add(recorded as keyof RecordedSpec);
  }
  return given;
}
