import {statSync} from 'node:fs';
import path from 'node:path';
import {UsageError} from '../errors.js';
import type {JobOverrides, LoadedJob} from '../jobs/load.js';
import {moduleResumeProblem} from '../jobs/record-identity.js';
import {runFiles} from '../jobs/results.js';
import {reclaimDeadRuns} from './lease.js';
import type {RecordedSpec, ResumeInfo, RunRecord, StateStore} from './store.js';

/** A run that `maxFailures` or `maxInvalid` stopped: recorded `failed`, with its records after the stop never sent. */
export function isThresholdAbort(run: Pick<RunRecord, 'status' | 'reason'>): boolean {
  return run.status === 'failed' && /^max(Failures|Invalid): /.test(run.reason ?? '');
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
  const input = spec.input && spec.input !== '-' ? spec.input : undefined;
  const stat = input ? statSync(input, {throwIfNoEntry: false}) : undefined;
  const recorded: RecordedSpec = {target: spec.target, concurrency: spec.concurrency, rps: spec.rps, deadlineMs: spec.deadlineMs, maxAttempts: spec.retry.maxAttempts};
  return {
    jobFile: path.resolve(spec.file), input, inputSize: stat?.size, inputMtimeMs: stat ? Math.round(stat.mtimeMs) : undefined,
    inputIsStream: stat !== undefined && !stat.isFile(), spec: recorded, ...runFiles(spec, runId),
  };
}

/**
 * The job as run `info` started it: its files and input, and the target, concurrency, rps,
 * deadline and maxAttempts it was started with (flags included), except the keys in `given`
 * (flags given now, which win). No reload: the proto is not parsed again.
 */
export function asRecorded(job: LoadedJob, info: ResumeInfo, given: ReadonlySet<keyof RecordedSpec> = new Set()): LoadedJob {
  const recorded = info.spec;
  const pick = <K extends keyof RecordedSpec>(key: K, current: RecordedSpec[K]): RecordedSpec[K] => (recorded && !given.has(key) ? recorded[key] : current);
  const spec = job.spec;
  return {
    ...job,
    spec: {
      ...spec,
      output: info.output, failures: info.failures, ...(info.input ? {input: info.input, requests: undefined} : {}), // a module run given --input read that file
      target: pick('target', spec.target), concurrency: pick('concurrency', spec.concurrency), rps: pick('rps', spec.rps),
      deadlineMs: pick('deadlineMs', spec.deadlineMs), retry: {...spec.retry, maxAttempts: pick('maxAttempts', spec.retry.maxAttempts)},
    },
  };
}

/**
 * Finds the run to resume (`runId`, or the job's newest unfinished run), checks it can be resumed
 * (finished runs, runs still going and changed input are refused, with what to do instead), and
 * returns it with where it reads and writes. It claims nothing: `StateStore#claimRun` does, with
 * the run's files locked.
 */
export function findRunToResume(store: StateStore, job: LoadedJob, runId: string | undefined): {runId: string; info: ResumeInfo; overrides: JobOverrides} {
  reclaimDeadRuns(store);
  const name = job.spec.name;
  // Without a run id, a run of the job that is going now is the one meant: refuse it by name.
  const run = runId ? store.getRun(runId) : newestResumable(store, name) ?? store.listRuns({job: name, status: 'running', limit: 1})[0];
  if (!run) {
    throw new UsageError(runId
      ? `run ${runId} is not in the state database ${store.path} (see grpc-batch history --state ${store.path})`
      : `no unfinished run of job "${name}" to resume in ${store.path}; grpc-batch history --job ${name} lists its runs`);
  }
  if (run.job !== name) throw new UsageError(`run ${run.runId} belongs to job "${run.job}", not "${name}"`);
  if (run.status === 'running') {
    const beat = run.heartbeatAt !== undefined ? `, lease renewed ${Math.max(0, Math.round((Date.now() - run.heartbeatAt) / 1000))}s ago` : '';
    throw new UsageError(`run ${run.runId} is still running (pid ${run.pid} on ${run.host}${beat}); stop it first, or wait for it to end`);
  }
  if ((run.status === 'succeeded' || run.status === 'failed' || run.status === 'skipped') && !isThresholdAbort(run)) {
    const hint = run.status === 'failed' && run.failures ? `; to re-send its failed records: grpc-batch run ... --input ${run.failures}` : '';
    throw new UsageError(`run ${run.runId} is finished (${run.status}); there is nothing to resume${hint}`);
  }
  const limits = overLimits(run, job);
  if (limits) throw new UsageError(`run ${run.runId} already has ${limits}; resuming it would stop again at once: raise the limit for this run with ${limits.includes('failed') ? `--max-failures ${Math.max(2 * (run.failed ?? 0), 10)}` : `--max-invalid ${Math.max(2 * (run.invalid ?? 0), 10)}`}`);
  const info = store.getResumeInfo(run.runId);
  if (!info) throw new UsageError(`run ${run.runId} has no checkpoint (it was recorded by an older grpc-batch) and cannot be resumed`);
  if (info.inputIsStream) throw new UsageError(`run ${run.runId} read ${info.input}, a pipe or device: its records are gone and it cannot be resumed; save the input to a file`);
  const noKey = moduleResumeProblem(job.spec, run.runId, info.input);
  if (noKey) throw new UsageError(noKey);
  const changed = inputChange(run.runId, info);
  if (changed) throw new UsageError(`${changed}. Start a new run instead`);
  return {runId: run.runId, info, overrides: {output: info.output, failures: info.failures, ...(info.input ? {input: info.input} : {})}};
}

/** The threshold a stored run is already past under the job's limits (flags included), or undefined. */
function overLimits(run: RunRecord, job: LoadedJob): string | undefined {
  const {maxFailures, maxInvalid} = job.spec;
  if (maxFailures !== undefined && (run.failed ?? 0) > maxFailures) return `${run.failed} failed records, more than maxFailures (${maxFailures})`;
  if (maxInvalid !== undefined && (run.invalid ?? 0) > maxInvalid) return `${run.invalid} invalid records, more than maxInvalid (${maxInvalid})`;
  return undefined;
}

/** Why a run's input can no longer be resumed from (gone, or changed since the run started), or undefined when it can. */
export function inputChange(runId: string, info: ResumeInfo): string | undefined {
  if (!info.input) return undefined;
  const now = statSync(info.input, {throwIfNoEntry: false});
  if (!now) return `run ${runId} read ${info.input}, which is gone; it cannot be resumed`;
  if (now.size !== info.inputSize || Math.round(now.mtimeMs) !== info.inputMtimeMs) {
    return `the input ${info.input} changed since run ${runId} started (size ${info.inputSize} -> ${now.size} bytes); resuming would skip the wrong records`;
  }
  return undefined;
}

/** The recorded keys that flags given now override (`-t`, `-c`, `--rps`, `-d`, `--max-attempts`). */
export function givenSpecKeys(flags: JobOverrides): Set<keyof RecordedSpec> {
  const given = new Set<keyof RecordedSpec>();
  if (flags.target !== undefined) given.add('target');
  if (flags.concurrency !== undefined) given.add('concurrency');
  if (flags.rps !== undefined) given.add('rps');
  if (flags.deadline !== undefined) given.add('deadlineMs');
  if (flags.maxAttempts !== undefined) given.add('maxAttempts');
  return given;
}
