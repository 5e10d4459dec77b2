/**
 * The error model. Only bad input, I/O and bugs throw; a gRPC status is data (see `CallOutcome`).
 * Each class carries the process exit code the CLI maps it to, so the entry point is the one place
 * that turns errors into exits.
 */

/** Process exit codes. 1 is never thrown: it means "the run finished with failed records". */
export const EXIT = {
  OK: 0,
  RECORDS_FAILED: 1,
  USAGE: 2,
  INTERNAL: 3,
  /** Stopped before the end for no record's fault (the backend unreachable for maxOutage); nothing failed for it; `--resume` continues. */
  INTERRUPTED: 4,
  SIGINT: 130,
  SIGTERM: 143,
} as const;

/** One problem found in a job file, a flag or an input record, printed on one line. */
export interface Issue {
  /** File the problem is in (job file, input file), or `<flags>`. */
  readonly file: string;
  /** Key path inside the job (`retry.maxAttempts`), or `line 12` for an input record. */
  readonly path: string;
  /** What was expected and what came in. */
  readonly message: string;
  /** `warning` issues are printed but do not stop the run. @default 'error' */
  readonly severity?: 'error' | 'warning';
}

export function formatIssue(issue: Issue): string {
  const where = issue.path ? `${issue.file}: ${issue.path}` : issue.file;
  return `${where}: ${issue.message}`;
}

/** A command to run next, and what it does: printed under an error or a summary. */
export interface NextStep {
  readonly command: string;
  readonly why: string;
}

export class GbError extends Error {
  readonly exitCode: number = EXIT.INTERNAL;
  readonly code: string = 'gb.error';
  /** What the user can run next (`--resume` after a crash), printed under the message. */
  next: readonly NextStep[] = [];
  constructor(message: string, options?: {cause?: unknown}) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A flag or argument is wrong. Nothing was sent. */
export class UsageError extends GbError {
  override readonly exitCode = EXIT.USAGE;
  override readonly code = 'gb.usage';
}

/** The job (file, flags, proto, environment) is invalid. Carries every issue found. Nothing was sent. */
export class ValidationError extends GbError {
  override readonly exitCode = EXIT.USAGE;
  override readonly code = 'gb.validation';
  readonly issues: readonly Issue[];
  /** The line printed above the issues. @default 'the job is not valid; nothing was sent' */
  readonly title: string;
  constructor(issues: readonly Issue[], options?: {cause?: unknown; title?: string}) {
    const errors = issues.filter((i) => i.severity !== 'warning');
    super(errors.map(formatIssue).join('\n'), options);
    this.issues = errors;
    this.title = options?.title ?? 'the job is not valid; nothing was sent';
  }
}

/** An I/O failure or a bug: the run could not go on. */
export class InternalError extends GbError {
  override readonly exitCode = EXIT.INTERNAL;
  override readonly code: string = 'gb.internal';
  /** The summary of the run up to the error, when a run was going (printed, and recorded). */
  summary: unknown;
}

/**
 * Reading or writing a run's results, failures or state failed (ENOSPC, EACCES, EROFS, EIO...):
 * the run stopped cleanly and can be resumed once the cause is fixed. The message names the job key
 * and the path when known (`failures: cannot write /x: ENOSPC ...`). `summary` is the run so far.
 */
export class IoError extends InternalError {
  override readonly code = 'gb.io';
  /** The file that could not be written. */
  readonly file: string;
  /** The system error code (`ENOSPC`), or the SQLite one for the state database. */
  readonly errno: string | undefined;
  /** `key`: the job key the file comes from (`output`); `what`: the operation (`write`). */
  constructor(file: string, cause: unknown, options: {key?: string | undefined; what?: string | undefined} = {}) {
    const errno = (cause as NodeJS.ErrnoException | undefined)?.code;
    const where = options.key ? `${options.key}: cannot ${options.what ?? 'write'} ${file}` : file;
    super(`${where}: ${getErrorMessage(cause)}`, {cause});
    this.file = file;
    this.errno = errno;
  }
}

/**
 * A distributed run cannot go on (`run --redis`): Redis lost the run's data (restarted without
 * persistence), refused its writes, or the workers failed a chunk for good. Not a bug: the run
 * stops with its summary and can be resumed once the cause is fixed.
 */
export class QueueError extends InternalError {
  override readonly code = 'gb.queue';
}

/**
 * A coordinator of a distributed run found that another drives the run now (a newer generation of
 * its lease, or the lease gone): it stops at once and records nothing more, not even its end, in
 * the results file, the failures file or the state database, which are the other's now.
 */
export class FencedError extends QueueError {
  readonly fenced = true;
}

/** The run was stopped by a signal; the summary was still written. */
export class InterruptedError extends GbError {
  override readonly code = 'gb.interrupted';
  override readonly exitCode: number;
  readonly signal: NodeJS.Signals;
  constructor(signal: NodeJS.Signals) {
    super(`interrupted by ${signal}`);
    this.signal = signal;
    this.exitCode = signal === 'SIGINT' ? EXIT.SIGINT : EXIT.SIGTERM;
  }
}

/** The message of anything thrown, for logs. */
export function getErrorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
