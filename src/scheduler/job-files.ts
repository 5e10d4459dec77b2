import {readdirSync, statSync} from 'node:fs';
import path from 'node:path';
import {ValidationError, type Issue} from '../errors.js';
import {loadJob, type LoadedJob} from '../config/load.js';
import {checkFilesWritable} from '../config/outputs.js';

export interface LoadJobsOptions {
  /** Folder of the default results and failures files (`--out-dir`). @default ./out */
  readonly outDir?: string;
  /**
   * The daemon's checks: each job's files can be written, and their paths hold `{runId}` (a job
   * the daemon runs again and again writes one file per run; a fixed path would be refused from its
   * second run on). @default false
   */
  readonly forDaemon?: boolean;
}

/** Job files picked up from a folder (modules only when named one by one). */
const FOLDER_JOB_FILE = /\.(ya?ml|json)$/i;

/** Expands folders into the job files they hold (sorted, not recursive); files pass through. */
export function findJobFiles(paths: readonly string[]): {files: string[]; issues: Issue[]} {
  const files: string[] = [];
  const issues: Issue[] = [];
  for (const given of paths) {
    let isFolder = false;
    try {
      isFolder = statSync(given).isDirectory();
    } catch {
      // a missing file is reported by loadJob, with the usual wording
    }
    if (!isFolder) {
      files.push(given);
      continue;
    }
    const found = readdirSync(given)
      .filter((name) => FOLDER_JOB_FILE.test(name))
      .sort()
      .map((name) => path.join(given, name));
    if (found.length === 0) issues.push({file: given, path: '', message: 'folder holds no job files (*.yaml, *.yml, *.json)'});
    files.push(...found);
  }
  return {files: [...new Set(files.map((f) => path.resolve(f)))], issues};
}

function daemonFileIssues(job: LoadedJob): Issue[] {
  const issues = checkFilesWritable(job.spec);
  for (const key of ['output', 'failures'] as const) {
    if (!job.spec[key].includes('{runId}')) {
      issues.push({
        file: job.spec.file,
        path: key,
        message: `the daemon runs a job again and again, and a run never overwrites another's files: put {runId} in the path (${path.basename(job.spec[key]).replace(/(\.[a-z]+)$/, '-{runId}$1')})`,
      });
    }
  }
  return issues;
}

/**
 * Loads and validates every job before any starts: throws one `ValidationError` with the issues of
 * every bad file (and duplicate names) so that nothing runs unless all are valid.
 */
export async function loadJobs(paths: readonly string[], options: LoadJobsOptions = {}): Promise<{jobs: LoadedJob[]; warnings: Issue[]}> {
  const {files, issues} = findJobFiles(paths);
  const jobs: LoadedJob[] = [];
  const warnings: Issue[] = [];
  for (const file of files) {
    try {
      const job = await loadJob(file, options.outDir !== undefined ? {outDir: options.outDir} : {});
      if (job.spec.input === '-')
        issues.push({file: job.spec.file, path: 'input', message: 'a scheduled job cannot read standard input; give a file'});
      if (options.forDaemon) issues.push(...daemonFileIssues(job));
      jobs.push(job);
      warnings.push(...job.warnings);
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      issues.push(...error.issues);
    }
  }
  const byName = new Map<string, string>();
  for (const job of jobs) {
    const other = byName.get(job.spec.name);
    if (other)
      issues.push({
        file: job.spec.file,
        path: 'name',
        message: `job name "${job.spec.name}" is already used by ${other}; names must be unique (set name: in one of them)`,
      });
    else byName.set(job.spec.name, job.spec.file);
  }
  if (issues.length > 0) throw new ValidationError(issues);
  return {jobs, warnings};
}
