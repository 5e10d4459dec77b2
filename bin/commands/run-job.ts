import path from 'node:path';
import {UsageError} from '../../src/errors.js';
import {flagForKey, FLAGS_LABEL, flagJobText, hasJobFlags, jobFromFlags, recordedJobPath, writeJobFile} from '../../src/config/flag-job.js';
import {loadJob, loadJobValue, type LoadedJob} from '../../src/config/load.js';
import {displayPath} from '../../src/engine/print.js';
import type {LogFormat, Logger} from '../../src/util/log.js';
import {resolveStatePath, StateStore} from '../../src/state/store.js';
import type {JobFlags} from '../../src/config/flag-job.js';

/* The job of a `grpc-batch run`: from a job file, from flags (no job file), or recorded by the run `--resume RUNID` names. Loaded by the run command's action only. */

/** `run`'s flags as commander parses them. */
export interface RunFlags extends Omit<JobFlags, 'headers'> {
  /** `-H 'name: value'`, repeatable. */
  readonly header: string[];
  readonly saveJob?: string;
  /** `--only-status`, normalised: `UNAVAILABLE,DEADLINE_EXCEEDED`. */
  readonly onlyStatus?: string;
  readonly dryRun?: boolean;
  readonly json?: boolean;
  readonly progress?: boolean;
  readonly progressInterval?: string | number;
  readonly state?: string;
  readonly resume?: boolean | string;
  readonly logFormat?: LogFormat;
  readonly preflight?: boolean;
  readonly redis?: string;
  readonly prefix: string;
  readonly chunkSize: number;
}

/** Whether any flag that gives a job without a job file was given (TLS ones included). */
function givesJob(flags: RunFlags): boolean {
  return hasJobFlags(flags) || Boolean(flags.tls || flags.ca || flags.cert || flags.key || flags.serverName || flags.saveJob);
}

/**
 * The job of this run: the job file's, with the flags over it; or, without a job file, the one the
 * flags give (`--target --method -i`), or with only `--resume RUNID` the one that run recorded.
 */
export async function loadRunJob(
  jobFile: string | undefined,
  flags: RunFlags,
): Promise<{job: LoadedJob; fromFlags?: Record<string, unknown>}> {
  const {header, ...rest} = flags;
  if (jobFile !== undefined) {
    if (givesJob(flags)) {
      const given = ['--method', '--proto', '--protoset', '--tls', '--ca', '--cert', '--key', '--server-name', '--save-job'].filter(
        (flag) => process.argv.includes(flag) || process.argv.some((arg) => arg.startsWith(`${flag}=`)),
      );
      throw new UsageError(
        `${given.join(', ') || '--method, --proto, --protoset, the TLS flags and --save-job'} give a job without a job file, and ${jobFile} is one: put them in it (method, proto, protoset, tls), or drop ${jobFile}`,
      );
    }
    return {job: await loadJob(jobFile, {...rest, headers: header})};
  }
  if (!givesJob(flags) && typeof flags.resume === 'string' && flags.target === undefined && flags.input === undefined) {
    return {job: await loadJob(recordedJobFile(flags.resume, flags.state), {...rest, headers: header})};
  }
  if (!givesJob(flags) && flags.target === undefined && flags.input === undefined) {
    throw new UsageError(
      "expected a job file (grpc-batch run job.yaml), or the job as flags: grpc-batch run --target HOST:PORT --method pkg.Service/Method [--proto F | --protoset F] -i input.jsonl [-H 'name: value']",
    );
  }
  const fromFlags = jobFromFlags({...rest, headers: header});
  // The identity of the job is in `fromFlags`; the other flags apply over it, as over a job file.
  const job = await loadJobValue(fromFlags, {label: FLAGS_LABEL, dir: process.cwd(), overrides: rest, renameKey: flagForKey});
  return {job, fromFlags};
}

/** The job file a run recorded when it started (`--resume RUNID` alone). */
function recordedJobFile(runId: string, stateFlag: string | undefined): string {
  const state = resolveStatePath(stateFlag).path;
  let store: StateStore;
  try {
    store = StateStore.open(state, {readonly: true});
  } catch (error) {
    throw new UsageError(
      `--resume ${runId} without a job file reads the run's job from the state database, and ${state} cannot be opened: ${(error as Error).message}`,
      {cause: error},
    );
  }
  try {
    const info = store.getResumeInfo(runId);
    if (!info)
      throw new UsageError(
        `run ${runId} is not in the state database ${state} with a checkpoint (see grpc-batch history --state ${state}); give its job file: grpc-batch run JOB --resume ${runId}`,
      );
    return info.jobFile;
  } finally {
    store.close();
  }
}

/**
 * Writes the job a run made from flags (`--save-job`, paths relative to it) and records it beside
 * the state database (paths absolute) unless it was saved: the file the run's `--resume`, its next
 * steps and the daemon load. Returns the job with that file as its own, or as it was when it could
 * not be written (then it cannot be resumed by run id alone; the log says why).
 */
export function recordFlagJob(job: LoadedJob, fromFlags: Record<string, unknown>, flags: RunFlags, log: Logger): LoadedJob {
  const {header: _header, ...overrides} = flags;
  if (flags.saveJob) {
    const file = path.resolve(flags.saveJob);
    writeJobFile(file, flagJobText(fromFlags, overrides, path.dirname(file), {relative: true}));
    log.info({event: 'job:saved', file}, `the job is saved to ${displayPath(file)}: grpc-batch run ${displayPath(file)} runs it again`);
    return {...job, spec: {...job.spec, file}};
  }
  const text = flagJobText(fromFlags, overrides, process.cwd(), {relative: false});
  const file = recordedJobPath(resolveStatePath(flags.state).path, job.spec.name, text);
  try {
    writeJobFile(file, text);
  } catch (error) {
    log.warn(
      {event: 'job:unrecorded', file},
      `the job could not be written to ${file} (${(error as Error).message}); give --save-job FILE to keep it`,
    );
    return job;
  }
  return {...job, spec: {...job.spec, file}};
}
