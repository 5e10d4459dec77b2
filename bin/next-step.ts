import {displayPath} from '../src/engine/print.js';
import type {NextStep} from '../src/engine/print.js';
import type {RunSummary} from '../src/engine/stats.js';
import {failureSteps} from './failure-steps.js';
import {flagAttribute, flaggedKeys, flagName} from '../src/config/job-keys.js';

/**
 * The flags of `run` that change what a run does or how it reads its input, carried into the command
 * printed as the next step: the flags of the job keys a run records (src/config/job-keys.ts), then the
 * flags of no job key. A `--resume` also reuses the values its run recorded at its start (see
 * `asRecorded`): the two agree, so the printed command and a bare `--resume` do the same.
 */
const CARRIED: readonly (readonly [key: string, flag: string])[] = [
  ...flaggedKeys()
    .filter((k) => k.declaration.recorded !== undefined)
    .map((k) => [flagAttribute(k.declaration.flag), flagName(k.declaration.flag)] as const),
  ['outDir', '--out-dir'],
  ['state', '--state'],
  ['header', '-H'],
  ['onlyStatus', '--only-status'],
];

/** How the run was started, as far as the next command needs it. */
export interface RunInvocation {
  /** The job file as the user typed it. */
  readonly jobFile: string;
  /** The parsed flags of `run`. */
  readonly flags: object;
  /** Whether the run is in a state database and its records can be read again (not stdin): `--resume` works. */
  readonly resumable: boolean;
  /** Why it cannot be resumed, and what to do, when that is not standard input or a missing state database (a job module without a key). */
  readonly notResumable?: {readonly why: string; readonly fix: string} | undefined;
  /** The job's limits, after the flags. */
  readonly maxFailures: number | undefined;
  readonly maxInvalid: number | undefined;
}

/** Quotes a shell word when it needs it. */
export function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

function command(invocation: RunInvocation, extra: readonly string[], drop: readonly string[] = []): string {
  const words = ['grpc-batch', 'run', invocation.jobFile];
  for (const [key, flag] of CARRIED) {
    const value = (invocation.flags as Record<string, unknown>)[key];
    if (value === undefined || value === false || drop.includes(key)) continue;
    if (Array.isArray(value))
      for (const each of value as unknown[]) words.push(flag, String(each)); // repeatable (-H)
    else if (value === true) words.push(flag);
    else words.push(flag, String(value));
  }
  return [...words, ...extra].map(shellQuote).join(' ');
}

/** `--resume` of a run that ended before its input did (a crash: every record with a result stays done). */
export function resumeStep(runId: string, invocation: RunInvocation): NextStep {
  return {command: command(invocation, ['--resume', runId]), why: `continues run ${runId}: records with a result are not sent again`};
}

/** A limit to suggest when a threshold stopped the run: past what was counted, with room to spare. */
function raisedLimit(limit: number, count: number): number {
  return Math.max(limit * 2, count * 2, 10);
}

/**
 * The commands to run after a run stopped or finished with failures: `--resume` for the records not
 * sent yet (after a signal or a `maxFailures`/`maxInvalid` abort), the failures file only for
 * records that were sent and failed, once the run has read its whole input.
 */
export function nextSteps(summary: RunSummary, invocation: RunInvocation): NextStep[] {
  const done = summary.ok + summary.failed + summary.invalid;
  const left = summary.inputRecords !== undefined ? summary.inputRecords - done : undefined;
  const cut = summary.unfinished > 0 ? ` and the ${summary.unfinished} cut short` : '';
  const notSent =
    left !== undefined ? `the ${left} records without a result yet` : `the records after input line ${summary.lastLine}${cut}`;
  if (summary.stopReason || summary.abortReason || summary.interruptReason) {
    if (!invocation.resumable) {
      const {why, fix} = invocation.notResumable ?? {
        why: 'it read standard input, or has no state database',
        fix: 'run again with the input saved to a file',
      };
      return [{command: command(invocation, []), why: `the run cannot be resumed (${why}): ${notSent} are lost to it; ${fix}`}];
    }
    const extra = ['--resume', summary.runId];
    const raised: string[] = [];
    /** The limits raised here replace the flags given; the others are kept as given. */
    const replaced: string[] = [];
    if (summary.stop === 'maxFailures' && invocation.maxFailures !== undefined) {
      const limit = raisedLimit(invocation.maxFailures, summary.failed);
      extra.push('--max-failures', String(limit));
      raised.push(`up to ${limit} failed records`);
      replaced.push('maxFailures');
    }
    if (summary.stop === 'maxInvalid' && invocation.maxInvalid !== undefined) {
      const limit = raisedLimit(invocation.maxInvalid, summary.invalid);
      extra.push('--max-invalid', String(limit));
      raised.push(`up to ${limit} invalid records`);
      replaced.push('maxInvalid');
    }
    const also = summary.failures ? '; its failures file is completed as it goes' : '';
    return [
      {
        command: command(invocation, extra, replaced),
        why: `continues run ${summary.runId} with ${notSent}${raised.length ? `, allowing ${raised.join(' and ')}` : ''}${also}`,
      },
    ];
  }
  if (!summary.failures || summary.failed + summary.invalid === 0) return [];
  const failures = displayPath(summary.failures);
  return failureSteps(summary, (extra) =>
    command(invocation, ['--input', failures, ...extra], ['maxFailures', 'maxInvalid', 'onlyStatus']),
  );
}
