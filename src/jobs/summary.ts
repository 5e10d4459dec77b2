import * as hdr from 'hdr-histogram-js';
import {statusName} from '../rpc/status.js';

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
  /**
   * Records whose calls a cancel cut short (a second signal, the end of the daemon's `--grace`):
   * they have no result line, and `--resume` sends them again. Not in `failed` or `byStatus`.
   */
  readonly unfinished: number;
  /** Final status of each sent record, by name. */
  readonly byStatus: Readonly<Record<string, number>>;
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
  unfinished = 0;
  lastLine = 0;
  readonly byStatus = new Map<number, number>();
  readonly #histogram = hdr.build({lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3});
  readonly startedAt = performance.now();

  get done(): number {
    return this.ok + this.failed + this.invalid;
  }

  /** Records the latency of one call (attempt). */
  recordLatency(ms: number): void {
    this.#histogram.recordValue(Math.max(1, Math.round(ms * 1000)));
  }

  recordFinal(code: number, attempts: number): void {
    this.byStatus.set(code, (this.byStatus.get(code) ?? 0) + 1);
    if (code === 0) this.ok++;
    else this.failed++;
    if (attempts > 1) this.retried++;
  }

  summarize(fields: {job: string; runId: string; stopReason?: string; abortReason?: string; output: string; failures?: string}): RunSummary {
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
      unfinished: this.unfinished,
      byStatus,
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

function round(value: number): number {
  return Math.round(value * 10) / 10;
}
