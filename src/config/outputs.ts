import {accessSync, constants, existsSync, statSync} from 'node:fs';
import path from 'node:path';
import {ValidationError, type Issue} from '../errors.js';
import {isFileLocked} from '../util/file-lock.js';
import {expandTemplate} from '../io/results.js';
import type {JobSpec} from './spec.js';

/** The job keys of a run's two files. */
const FILE_KEYS = ['output', 'failures'] as const;

/**
 * Before a run sends anything: both of its files can be written (their folder exists or can be
 * made, on a writable file system, with no file in the way), and a path without `{runId}` does not
 * hold an earlier run's lines, which would be overwritten. Throws `ValidationError` (exit 2).
 */
export function checkRunFiles(spec: JobSpec, runId: string, options: {resume?: boolean} = {}): void {
  const issues = runFileIssues(spec, runId, options);
  if (issues.length > 0) throw new ValidationError(issues, {title: 'the run cannot write its files; nothing was sent'});
}

/**
 * For `validate`: what `checkRunFiles` would refuse in a run started now, so that the two agree (a
 * path without `{runId}` that already has lines is refused by both). `asRun: false` (the daemon's
 * start) checks only that the files can be written: its runs are checked each time they start.
 */
export function checkFilesWritable(spec: JobSpec, options: {asRun?: boolean} = {}): Issue[] {
  if (options.asRun) return runFileIssues(spec, 'RUNID');
  const issues: Issue[] = [];
  for (const key of FILE_KEYS) {
    const problem = writeProblem(expandTemplate(spec[key], {name: spec.name, runId: 'RUNID'}));
    if (problem) issues.push({file: spec.file, path: key, message: `${problem}${fixFor(key)}`});
  }
  return issues;
}

function runFileIssues(spec: JobSpec, runId: string, options: {resume?: boolean} = {}): Issue[] {
  const issues: Issue[] = [];
  const paths = new Map<string, string>();
  for (const key of FILE_KEYS) {
    const file = expandTemplate(spec[key], {name: spec.name, runId});
    const other = paths.get(file);
    if (other) issues.push({file: spec.file, path: key, message: `is the same file as ${other} (${file}); give them different paths`});
    paths.set(file, key);
    const problem = writeProblem(file);
    if (problem) issues.push({file: spec.file, path: key, message: `${problem}${fixFor(key)}`});
    // A file another run is writing now: that run's lock refuses this one, and says so.
    else if (!options.resume && !spec[key].includes('{runId}') && hasLines(file) && !isFileLocked(file)) {
      issues.push({
        file: spec.file,
        path: key,
        message: `${file} already holds an earlier run's ${key === 'output' ? 'results' : 'failed records'}, and it is never overwritten: put {runId} in the path (${path.basename(file).replace(/(\.[a-z]+)$/, '-{runId}$1')}), give another path, or move the file away`,
      });
    }
  }
  return issues;
}

/** Why `file` cannot be created or written, or undefined when it can. */
export function writeProblem(file: string): string | undefined {
  const stat = statOf(file);
  if (stat) {
    if (stat.isDirectory()) return `${file} is a folder, not a file`;
    // /dev/null, a FIFO, a terminal: a run fsyncs its files at each checkpoint (EINVAL on a device)
    // and --resume reads the results back to skip the records done, so each must be a regular file.
    if (!stat.isFile())
      return `${file} is ${kindOf(stat)}, not a regular file: a run syncs its results and failures to disk at each checkpoint and --resume reads them back, so each must be a file (to keep no results, delete the file after the run)`;
    return access(file, `cannot write ${file}`);
  }
  let dir = path.dirname(file);
  while (!existsSync(dir)) {
    const parent = path.dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  const found = statOf(dir);
  if (found && !found.isDirectory()) return `cannot create ${file}: ${dir} is a file, not a folder`;
  return access(dir, `cannot create ${file} in ${dir}`);
}

function kindOf(stat: ReturnType<typeof statSync> & object): string {
  if (stat.isCharacterDevice()) return 'a character device';
  if (stat.isBlockDevice()) return 'a block device';
  if (stat.isFIFO()) return 'a named pipe (FIFO)';
  if (stat.isSocket()) return 'a socket';
  return 'not a file';
}

/** The file's stat, or undefined when it is not there (ENOENT, or a file where a folder should be: ENOTDIR). */
function statOf(file: string): ReturnType<typeof statSync> | undefined {
  try {
    return statSync(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw error;
  }
}

function access(target: string, what: string): string | undefined {
  try {
    accessSync(target, constants.W_OK);
    return undefined;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why =
      code === 'EROFS' ? 'read-only file system' : code === 'EACCES' || code === 'EPERM' ? 'permission denied' : (error as Error).message;
    return `${what}: ${why}${code ? ` (${code})` : ''}`;
  }
}

function fixFor(key: string): string {
  return `; set ${key} to a writable place, or use --out-dir for the default files`;
}

function hasLines(file: string): boolean {
  return (statOf(file)?.size ?? 0) > 0;
}
