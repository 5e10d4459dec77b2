import * as hdr from 'hdr-histogram-js';
import {cleanDetails, hintFor, type ExplainContext} from '../rpc/explain.js';
import {statusName} from '../rpc/status.js';

/** One error message of a status, with how many records ended with it. */
export interface ErrorCount {
  /** The message, cleaned up (`connect ECONNREFUSED 127.0.0.1:50999`); the results file has it in full. */
  readonly message: string;
  readonly count: number;
  /** What to change, for the causes a user can fix (TLS, names, nothing listening). */
  readonly hint?: string;
}

/** Distinct messages counted per status; further ones are counted together as "other messages". */
const MAX_MESSAGES_PER_STATUS = 50;
/** Messages kept per status in the summary. */
const TOP_MESSAGES = 3;
export const OTHER_MESSAGES = '(other messages)';

/** The end of a run, as printed and as `--json` prints it (one object on stdout). */
export interface RunSummary {
  readonly job: string;
  readonly runId: string;
  /** succeeded: every record OK; failed: some failed or were invalid; cancelled: stopped early. */
  readonly status: 'succeeded' | 'failed' | 'cancelled';
  /** Records read from the input. */
  readonly total: number;
  readonly ok: number;
  /** Records whose last attempt ended with a non-OK status (cancelled ones included). */
  readonly failed: number;
  /** Records not sent because they do not fit the request type. */
  readonly invalid: number;
  /** Final status of each sent record, by name. */
  readonly byStatus: Readonly<Record<string, number>>;
  /** The most frequent messages of each failed status (and of `INVALID` records), most frequent first. */
  readonly errors: Readonly<Record<string, readonly ErrorCount[]>>;
  /** Records in the input, when it was counted (a file); `total` is the records read. */
  readonly inputRecords?: number;
  /** Calls made, retries included. */
  readonly attempts: number;
  /** Records that needed more than one attempt. */
  readonly retried: number;
  readonly durationMs: number;
  /** Calls (attempts) per second over the run. */
  readonly callsPerSec: number;
  /** Latency of single calls (attempts), in ms. */
  readonly latencyMs: {readonly p50: number; readonly p90: number; readonly p99: number; readonly max: number};
  /** Records whose retries were refused by the retry throttle (too many calls failing). */
  readonly retriesThrottled: number;
  /** Why the run was stopped from outside, when it was (`SIGINT`, `SIGTERM`, ...): status `cancelled`. */
  readonly stopReason?: string;
  /** Why the run gave up by itself (`maxFailures`, `maxInvalid` passed): status `failed`. */
  readonly abortReason?: string;
  /** The last input line read: a stopped run's records after it were never read. */
  readonly lastLine: number;
  readonly output: string;
  /** Present when some record failed or was invalid. */
  readonly failures?: string;
}

/** Counts of a run in progress, for the progress bar and the final summary. */
export class RunStats {
  total = 0;
  ok = 0;
  failed = 0;
  invalid = 0;
  attempts = 0;
  retried = 0;
  throttled = 0;
  inFlight = 0;
  lastLine = 0;
  readonly byStatus = new Map<number, number>();
  readonly #messages = new Map<string, Map<string, number>>();
  readonly #histogram = hdr.build({lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3});
  readonly startedAt = performance.now();

  get done(): number {
    return this.ok + this.failed + this.invalid;
  }

  /** Records the latency of one call (attempt). */
  recordLatency(ms: number): void {
    this.#histogram.recordValue(Math.max(1, Math.round(ms * 1000)));
  }

  /** A sent record ended with `code` after `attempts`; `details` is its error message, if it failed. */
  recordFinal(code: number, attempts: number, details?: string): void {
    this.byStatus.set(code, (this.byStatus.get(code) ?? 0) + 1);
    if (code === 0) this.ok++;
    else {
      this.failed++;
      this.#count(statusName(code), details ?? '');
    }
    if (attempts > 1) this.retried++;
  }

  /** A record was not sent: it does not fit the request type (`reason`). */
  recordInvalid(reason: string): void {
    this.invalid++;
    this.#count('INVALID', reason);
  }

  #count(status: string, details: string): void {
    let messages = this.#messages.get(status);
    if (!messages) this.#messages.set(status, (messages = new Map()));
    let message = cleanDetails(details);
    if (!messages.has(message) && messages.size >= MAX_MESSAGES_PER_STATUS) message = OTHER_MESSAGES;
    messages.set(message, (messages.get(message) ?? 0) + 1);
  }

  #topErrors(explain: ExplainContext | undefined): Record<string, ErrorCount[]> {
    const errors: Record<string, ErrorCount[]> = {};
    const names = [...[...this.byStatus.keys()].sort((a, b) => a - b).map(statusName), 'INVALID'];
    for (const name of names) {
      const messages = this.#messages.get(name);
      if (!messages) continue;
      errors[name] = [...messages].sort((a, b) => b[1] - a[1]).slice(0, TOP_MESSAGES).map(([message, count]) => {
        const hint = explain && message !== OTHER_MESSAGES && name !== 'INVALID' ? hintFor(codeOf(name, this.byStatus), message, explain) : undefined;
        return hint ? {message, count, hint} : {message, count};
      });
    }
    return errors;
  }

  summarize(fields: {job: string; runId: string; stopReason?: string; abortReason?: string; output: string; failures?: string; explain?: ExplainContext; inputRecords?: number | undefined}): RunSummary {
    const durationMs = performance.now() - this.startedAt;
    const byStatus: Record<string, number> = {};
    for (const [code, count] of [...this.byStatus].sort((a, b) => a[0] - b[0])) byStatus[statusName(code)] = count;
    const empty = this.#histogram.totalCount === 0;
    const at = (p: number) => (empty ? 0 : round(this.#histogram.getValueAtPercentile(p) / 1000));
    return {
      job: fields.job,
      runId: fields.runId,
      status: fields.stopReason ? 'cancelled' : this.failed + this.invalid > 0 || fields.abortReason ? 'failed' : 'succeeded',
      total: this.total,
      ok: this.ok,
      failed: this.failed,
      invalid: this.invalid,
      byStatus,
      errors: this.#topErrors(fields.explain),
      ...(fields.inputRecords !== undefined ? {inputRecords: fields.inputRecords} : {}),
      attempts: this.attempts,
      retried: this.retried,
      retriesThrottled: this.throttled,
      durationMs: Math.round(durationMs),
      callsPerSec: durationMs > 0 ? round((this.attempts * 1000) / durationMs) : 0,
      latencyMs: {p50: at(50), p90: at(90), p99: at(99), max: empty ? 0 : round(this.#histogram.maxValue / 1000)},
      ...(fields.stopReason ? {stopReason: fields.stopReason} : {}),
      ...(fields.abortReason ? {abortReason: fields.abortReason} : {}),
      lastLine: this.lastLine,
      output: fields.output,
      ...(fields.failures ? {failures: fields.failures} : {}),
    };
  }
}

function codeOf(name: string, byStatus: ReadonlyMap<number, number>): number {
  for (const code of byStatus.keys()) if (statusName(code) === name) return code;
  return -1;
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}
