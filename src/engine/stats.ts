import type {RunChoices} from './choices.js';
// The two files used, not the package's index: it also loads the log writer, which builds an
// Intl.NumberFormat (ICU, some 25 ms) as it loads.
import {build} from 'hdr-histogram-js/dist/HistogramBuilder.js';
import {decodeFromCompressedBase64, encodeIntoCompressedBase64} from 'hdr-histogram-js/dist/encoding.js';
import {cleanDetails, hintFor, type ExplainContext} from '../rpc/explain.js';
import {Status, statusName} from '../codec/status.js';
import type {StopReason} from '../stop-reason.js';
import {StatusErrors} from './error-groups.js';

/**
 * One row of a status's errors: the records whose messages share a template (see error-groups.ts),
 * or (`other: true`) the records of every message not among the rows before it.
 */
export interface ErrorCount {
  /**
   * The message, cleaned up (`connect ECONNREFUSED 127.0.0.1:50999`); when the row's records had
   * different messages, their template (`order <id> not found`). The results file has each in full.
   */
  readonly message: string;
  readonly count: number;
  /** One of the row's messages as it came (`order o17 not found`), when they differ. */
  readonly example?: string;
  /** The remainder row: records whose messages are in no row above (`message` is `(other messages)`). */
  readonly other?: true;
  /** What to change, for the causes a user can fix (TLS, names, nothing listening). */
  readonly hint?: string;
}

/** Rows per status in the summary, before its remainder row. */
const TOP_MESSAGES = 3;
export const OTHER_MESSAGES = '(other messages)';

/** The end of a run, as printed and as `--json` prints it (one object on stdout). */
export interface RunSummary {
  readonly job: string;
  readonly runId: string;
  /**
   * succeeded: every record OK; failed: some failed or were invalid (or a threshold stopped the
   * run); cancelled: stopped from outside (a signal); interrupted: stopped before the end for a
   * reason that is no record's fault (the backend unreachable for `maxOutage`): `--resume` continues.
   */
  readonly status: 'succeeded' | 'failed' | 'cancelled' | 'interrupted';
  /** Records read from the input. */
  readonly total: number;
  /** Records read that have no result: never sent, or cut short by the stop. A resume sends them. */
  readonly unfinished: number;
  readonly ok: number;
  /** Records whose last attempt ended with a non-OK status (cancelled ones included). */
  readonly failed: number;
  /** Records not sent because they do not fit the request type. */
  readonly invalid: number;
  /** Final status of each sent record, by name. */
  readonly byStatus: Readonly<Record<string, number>>;
  /**
   * The most frequent messages of each failed status (and of `INVALID` records), most frequent
   * first, then a remainder row (`other: true`) when there are more: the rows of a status add up
   * to its count in `byStatus` (`invalid` for `INVALID`).
   */
  readonly errors: Readonly<Record<string, readonly ErrorCount[]>>;
  /** Records in the input, when it was counted (a regular file); `total` is the records read. */
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
  /** Retries that waited for the retry throttle (too many calls were failing): slowed, not dropped. */
  readonly retriesThrottled: number;
  /** Times the run paused because the backend was unreachable, and the time paused, ms. */
  readonly outages: {readonly pauses: number; readonly pausedMs: number};
  /** The calls-in-flight limit over the run, under `adaptive`. */
  readonly concurrencyLimit?: {readonly min: number; readonly mean: number; readonly max: number};
  /** Why the run was interrupted (status `interrupted`). */
  readonly interruptReason?: string;
  /** What to change when the interruption has a cause the user can fix (see `hintFor`). */
  readonly interruptHint?: string;
  /** Why the run was stopped from outside, when it was (`SIGINT`, `SIGTERM`, ...): status `cancelled`. */
  readonly stopReason?: string;
  /** Why the run gave up by itself (`maxFailures`, `maxInvalid` passed): status `failed`. */
  readonly abortReason?: string;
  /** Why the run stopped before the end of its input, as data (the three reasons above are messages): recorded, and read by `--resume`. */
  readonly stop?: StopReason;
  /** The last input line read: a stopped run's records after it were never read. */
  readonly lastLine: number;
  readonly output: string;
  /** Present when some record failed or was invalid. */
  readonly failures?: string;
  /** What the run chose: workers (`auto` resolved), schema source, transport (see choices.ts). */
  readonly chosen?: RunChoices;
  /** Server-streaming methods: the replies in the results (every record's `response` array), resumed runs included. */
  readonly replies?: number;
}

/** A part's latencies as plain data (to cross a thread or a process): an HDR histogram, compressed. */
export interface SharedLatencies {
  readonly histogram: string;
}

/** The summary's fields that are not counts. */
export interface SummaryFields {
  readonly job: string;
  readonly runId: string;
  readonly stopReason?: string | undefined;
  readonly abortReason?: string | undefined;
  readonly interruptReason?: string | undefined;
  /** What stopped the run, as data; `signal` when only `stopReason` is given. */
  readonly stop?: StopReason | undefined;
  readonly output: string;
  readonly failures?: string | undefined;
  readonly outages?: {readonly pauses: number; readonly pausedMs: number};
  readonly concurrencyLimit?: {readonly min: number; readonly mean: number; readonly max: number} | undefined;
  /** The job's target and TLS, for the hints of `errors`. */
  readonly explain?: ExplainContext | undefined;
  /** Records in the input, when counted. */
  readonly inputRecords?: number | undefined;
}

/**
 * Counts of a run in progress, for the progress bar and the final summary. Stats of parts of a run
 * (chunks run elsewhere) merge with `add`.
 */
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
  readonly #messages = new Map<string, StatusErrors>();
  readonly #histogram = build({lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3});
  readonly startedAt = performance.now();

  get done(): number {
    return this.ok + this.failed + this.invalid;
  }

  /** Records the latency of one call (attempt). */
  recordLatency(ms: number): void {
    this.#histogram.recordValue(Math.max(1, Math.round(ms * 1000)));
  }

  /** Adds another part's counts and latencies (a worker's, a chunk's). */
  add(other: RunStats): void {
    this.total += other.total;
    this.ok += other.ok;
    this.failed += other.failed;
    this.invalid += other.invalid;
    this.attempts += other.attempts;
    this.retried += other.retried;
    this.throttled += other.throttled;
    this.lastLine = Math.max(this.lastLine, other.lastLine);
    for (const [code, count] of other.byStatus) this.byStatus.set(code, (this.byStatus.get(code) ?? 0) + count);
    for (const [status, errors] of other.#messages) this.#errorsOf(status).merge(errors);
    this.#histogram.add(other.#histogram);
  }

  /** The latency histogram as plain data, for `addLatencies` elsewhere. */
  shareLatencies(): SharedLatencies {
    return {histogram: encodeIntoCompressedBase64(this.#histogram)};
  }

  /** Adds latencies recorded elsewhere (a worker thread's). */
  addLatencies(shared: SharedLatencies): void {
    this.#histogram.add(decodeFromCompressedBase64(shared.histogram));
  }

  /** A sent record ended with `code` after `attempts`; `details` is its error message, if it failed. */
  recordFinal(code: number, attempts: number, details?: string): void {
    this.byStatus.set(code, (this.byStatus.get(code) ?? 0) + 1);
    if (code === Status.OK) this.ok++;
    else {
      this.failed++;
      this.#errorsOf(statusName(code)).add(cleanDetails(details ?? ''));
    }
    if (attempts > 1) this.retried++;
  }

  /** A record was not sent: it does not fit the request type (`reason`). */
  recordInvalid(reason: string): void {
    this.invalid++;
    this.#errorsOf('INVALID').add(cleanDetails(reason));
  }

  #errorsOf(status: string): StatusErrors {
    let errors = this.#messages.get(status);
    if (!errors) this.#messages.set(status, (errors = new StatusErrors()));
    return errors;
  }

  #topErrors(explain: ExplainContext | undefined): Record<string, ErrorCount[]> {
    const errors: Record<string, ErrorCount[]> = {};
    const codes = [...this.byStatus.keys()].sort((a, b) => a - b);
    for (const [name, code] of [...codes.map((c) => [statusName(c), c] as const), ['INVALID', -1] as const]) {
      const counted = this.#messages.get(name);
      if (!counted) continue;
      const rows: ErrorCount[] = counted.top(TOP_MESSAGES).map((group) => {
        const hint = explain && code >= 0 ? hintFor(code, group.example, explain) : undefined;
        return {
          message: group.varied ? group.template : group.example,
          count: group.count,
          ...(group.varied ? {example: group.example} : {}),
          ...(hint ? {hint} : {}),
        };
      });
      const rest = counted.total - rows.reduce((sum, row) => sum + row.count, 0);
      if (rest > 0) rows.push({message: OTHER_MESSAGES, count: rest, other: true});
      errors[name] = rows;
    }
    return errors;
  }

  summarize(fields: SummaryFields): RunSummary {
    const durationMs = performance.now() - this.startedAt;
    const byStatus: Record<string, number> = {};
    for (const [code, count] of [...this.byStatus].sort((a, b) => a[0] - b[0])) byStatus[statusName(code)] = count;
    const empty = this.#histogram.totalCount === 0;
    const at = (p: number) => (empty ? 0 : round(this.#histogram.getValueAtPercentile(p) / 1000));
    const status = fields.interruptReason
      ? 'interrupted'
      : fields.stopReason
        ? 'cancelled'
        : this.failed + this.invalid > 0 || fields.abortReason
          ? 'failed'
          : 'succeeded';
    const stop = fields.stop ?? (fields.stopReason ? 'signal' : undefined);
    return {
      job: fields.job,
      runId: fields.runId,
      status,
      total: this.total,
      unfinished: Math.max(0, this.total - this.done),
      ok: this.ok,
      failed: this.failed,
      invalid: this.invalid,
      byStatus,
      errors: this.#topErrors(fields.explain),
      ...(fields.inputRecords !== undefined ? {inputRecords: fields.inputRecords} : {}),
      attempts: this.attempts,
      retried: this.retried,
      retriesThrottled: this.throttled,
      outages: {pauses: fields.outages?.pauses ?? 0, pausedMs: Math.round(fields.outages?.pausedMs ?? 0)},
      ...(fields.concurrencyLimit ? {concurrencyLimit: fields.concurrencyLimit} : {}),
      durationMs: Math.round(durationMs),
      callsPerSec: durationMs > 0 ? round((this.attempts * 1000) / durationMs) : 0,
      latencyMs: {p50: at(50), p90: at(90), p99: at(99), max: empty ? 0 : round(this.#histogram.maxValue / 1000)},
      ...(fields.stopReason ? {stopReason: fields.stopReason} : {}),
      ...(fields.abortReason ? {abortReason: fields.abortReason} : {}),
      ...(fields.interruptReason ? {interruptReason: fields.interruptReason} : {}),
      ...(fields.interruptReason && fields.explain && hintFor(Status.UNAVAILABLE, fields.interruptReason, fields.explain)
        ? {interruptHint: hintFor(Status.UNAVAILABLE, fields.interruptReason, fields.explain)}
        : {}),
      ...(stop ? {stop} : {}),
      lastLine: this.lastLine,
      output: fields.output,
      ...(fields.failures ? {failures: fields.failures} : {}),
    };
  }
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}
