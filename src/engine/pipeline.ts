import type * as grpc from '@grpc/grpc-js';
import pLimit, {type LimitFunction} from 'p-limit';
import type {CallOutcome, CancellableCall} from '../rpc/call.js';
import type {ChannelPool} from '../rpc/channel.js';
import type {MethodHandle} from '../schema/method-handle.js';
import {DEFAULT_CONNECT_TIMEOUT_MS, OutageGate, type OutageEvent, type OutageStatus} from '../rpc/outage-gate.js';
import {probeBackend} from '../rpc/probe.js';
import {backoffMs, BackoffTimers, isRetryable, pushbackMs, type RetryPolicy} from '../rpc/retry.js';
import {defaultMaxTokens, RetryThrottle} from '../rpc/retry-throttle.js';
import {retryDelayFromStatus} from '../rpc/rich-status.js';
import {Status} from '../codec/status.js';
import {createSender, type RecordSender} from '../rpc/sender.js';
import {RateLimiter} from './rate.js';
import {AdaptiveLimit, rampConcurrency, rampShare} from './adaptive-limit.js';
import {TurnPacer} from './turn-pacer.js';
import {Waiter} from '../util/waiter.js';

/** One record ready to send: plain data. */
export interface PlannedCall {
  /** 1-based input line (or index in a module's `requests()`). */
  readonly line: number;
  /** The encoded request. */
  readonly request: Buffer;
  /** The call's own metadata (templated values, an envelope's), replacing the job's. */
  readonly metadata?: grpc.Metadata;
  /** The record's own per-attempt deadline (an envelope's), in ms. */
  readonly deadlineMs?: number;
}

/** How a record left the pipeline. */
export type CallReport =
  /** It has a final outcome: the last attempt's. */
  | {
      readonly kind: 'final';
      readonly call: PlannedCall;
      readonly outcome: CallOutcome;
      readonly attempts: number;
      readonly latencyMs: number;
    }
  /** The run stopped before the record got a final outcome: it has no result, and a resume sends it again. */
  | {readonly kind: 'unsent'; readonly call: PlannedCall; readonly attempts: number};

export interface PipelineOptions {
  readonly pool: ChannelPool;
  readonly method: MethodHandle;
  /** The one bound: records in the pipeline at once (calls in flight, backoffs included). */
  readonly concurrency: number;
  /** Calls (attempts) started per second; 0 = no limit. */
  readonly rps: number;
  /** Concurrency and rps rise from 1 to their caps over this long; 0 = at once. */
  readonly rampUpMs: number;
  /** Learn the concurrency under the cap from the backend's answers (`AdaptiveLimit`). */
  readonly adaptive: boolean;
  readonly retry: RetryPolicy;
  readonly deadlineMs: number;
  readonly metadata?: grpc.Metadata;
  readonly waitForReady: boolean;
  /** Put response headers and trailers in the outcomes. @default false */
  readonly recordMetadata?: boolean;
  /** Bidi methods: streams (undefined = the default for `concurrency`). */
  readonly streams?: number | undefined;
  /** Client-streaming methods: records per call (undefined = the default for `concurrency`). */
  readonly batchSize?: number | undefined;
  /** Server-streaming only: most replies kept per record. */
  readonly maxReplies?: number | undefined;
  /** Give up (the run is interrupted) after the backend was unreachable this long; 0 = never. */
  readonly maxOutageMs: number;
  /** Called before a record's first attempt, so the results of the records that freed slots reach the disk first. */
  readonly beforeSend?: () => void;
  /** Every record's end, in completion order. A rejection aborts the run. */
  readonly onReport: (report: CallReport) => void | Promise<void>;
  /** Every attempt's answer (for the latency histogram). */
  readonly onAttempt?: (latencyMs: number) => void;
  /** The backend went down, came back, or the wait was given up. */
  readonly onOutage?: (event: OutageEvent) => void;
  /** A report threw (an I/O error): the caller stops the run. */
  readonly onFatal: (error: unknown) => void;
}

/** What the pipeline holds now, for progress. */
export interface PipelineStatus {
  /** Records in the pipeline (sending, waiting for a retry, or at the outage gate). */
  readonly records: number;
  /** Calls on the wire. */
  readonly calls: number;
  /** Records allowed in at once now (the cap, or less under `adaptive` and `rampUp`). */
  readonly limit: number;
  readonly outage: OutageStatus;
}

/** How often a ramp-up raises the limits. */
const RAMP_TICK_MS = 100;
/** How often the outage gate looks at a channel that is not connected while records are out. */
const CONNECT_CHECK_MS = 500;
/** The probe call's deadline when the job has none. */
const DEFAULT_PROBE_TIMEOUT_MS = 20_000;
/** A connection that broke under a call (the server did not answer it). */
const CONNECTION_LOST = /Connection dropped|ECONNRESET|EPIPE|GOAWAY|Connection closed|socket hang up/;
/**
 * Why a connection could not be made (grpc-js: "No connection established. Last error: ..."): these
 * mean the server is not there (yet): refused, unreachable, timed out, not in DNS. Anything else in
 * that message (a TLS error, a reset right after connecting as a TLS server does to a plaintext
 * client, "Failed to connect") comes from the job's own settings: waiting would not help, so those
 * fail as the records' own.
 */
const NOT_THERE = /ECONNREFUSED|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|EAI_AGAIN|ENOTFOUND|timed out|Name resolution failed/;
/** TLS and certificate errors, wherever grpc-js reports them: the job's TLS settings, not the backend. */
const TLS_MISTAKE = /SSL routines|certificate|ERR_TLS|wrong version number/i;

/**
 * A failure of the job's own making on the way to the server: a connection never made for a reason
 * other than NOT_THERE (a TLS error, a reset right after connecting as a TLS server does to a
 * plaintext client), or a TLS error. It is no sign of an outage, and must not count in the gate's
 * "UNAVAILABLE with no OK" streak either: a record retrying it for over a second would pause the
 * whole run for `maxOutage`.
 */
function isOwnMistake(details: string): boolean {
  return (details.startsWith('No connection established') && !NOT_THERE.test(details)) || TLS_MISTAKE.test(details);
}

/**
 * Runs records: the one bound (a p-limit pool), calls per turn, one call with retries per record,
 * and the flow control around them: the outage gate (pause, don't fail), the retry throttle (wait,
 * don't fail), server pushback, adaptive concurrency and ramp-up. Outcomes go to `onReport`.
 */
export class Pipeline {
  readonly #o: PipelineOptions;
  readonly #limit: LimitFunction;
  readonly #gate: OutageGate;
  readonly #throttle: RetryThrottle;
  readonly #adaptive: AdaptiveLimit | undefined;
  readonly #rate: RateLimiter | undefined;
  readonly #timers = new BackoffTimers();
  readonly #pacer = new TurnPacer();
  readonly #calls = new Set<CancellableCall>();
  /** One unary call per record, or records as messages of a streaming method (rpc/sender.ts). */
  readonly #sender: RecordSender;
  readonly #startedAt = performance.now();
  #rampTimer: NodeJS.Timeout | undefined;
  #connectTimer: NodeJS.Timeout | undefined;
  #records = 0;
  #stopping = false;
  #cancelled = false;
  readonly #room = new Waiter(() => this.hasRoom || this.#stopping);
  readonly #idle = new Waiter(() => this.#records === 0);

  constructor(options: PipelineOptions) {
    this.#o = options;
    this.#adaptive = options.adaptive ? new AdaptiveLimit({maxLimit: options.concurrency}) : undefined;
    this.#limit = pLimit(this.#currentLimit());
    this.#rate = options.rps > 0 ? new RateLimiter(options.rampUpMs > 0 ? Math.max(1, options.rps / 1000) : options.rps) : undefined;
    this.#throttle = new RetryThrottle(options.retry.throttle ?? {maxTokens: defaultMaxTokens(options.concurrency), tokenRatio: 1});
    // The probe's deadline is the job's: a backend that answers nothing, not even a health check,
    // in the time the job gives a call is not there for the run.
    const probeTimeoutMs = options.deadlineMs > 0 ? options.deadlineMs : DEFAULT_PROBE_TIMEOUT_MS;
    this.#gate = new OutageGate({
      state: (tryToConnect) => options.pool.connectivity(tryToConnect),
      watch: (_current, deadline, callback) => options.pool.watchConnectivity(deadline, callback),
      probe: (signal) => probeBackend(options.pool, {timeoutMs: probeTimeoutMs, metadata: options.metadata, signal}),
      maxOutageMs: options.maxOutageMs,
      // A connection is given the job's deadline to come up, at most gRPC's 20s.
      connectTimeoutMs: options.deadlineMs > 0 ? Math.min(options.deadlineMs, DEFAULT_CONNECT_TIMEOUT_MS) : DEFAULT_CONNECT_TIMEOUT_MS,
      onChange: (event) => {
        // Given up: the calls still out are on a dead connection (or waiting for one), maybe with no
        // deadline. Cut them: their records are unfinished, and a resume sends them again.
        if (event.type === 'gave-up') this.cancel();
        options.onOutage?.(event);
      },
    });
    this.#sender = createSender(options.pool, options.method, {
      deadlineMs: options.deadlineMs,
      metadata: options.metadata,
      waitForReady: options.waitForReady,
      inFlight: this.#calls,
      recordMetadata: options.recordMetadata ?? false,
      concurrency: options.concurrency,
      streams: options.streams,
      batchSize: options.batchSize,
      maxReplies: options.maxReplies,
    });
    if (options.rampUpMs > 0) {
      this.#rampTimer = setInterval(() => this.#ramp(), RAMP_TICK_MS);
      this.#rampTimer.unref();
    }
    this.#connectTimer = setInterval(() => this.#gate.checkConnecting(this.#records > 0), CONNECT_CHECK_MS);
    this.#connectTimer.unref();
  }

  /** Whether another record may come in now. */
  get hasRoom(): boolean {
    return this.#records < this.#limit.concurrency && !this.#stopping;
  }

  /** Resolves when another record may come in, or the pipeline is stopping. */
  room(): Promise<void> {
    return this.#room.wait();
  }

  /** Resolves when no record is left in the pipeline. */
  idle(): Promise<void> {
    return this.#idle.wait();
  }

  /** Takes a record in. Call only when `hasRoom`. */
  submit(call: PlannedCall): void {
    this.#records++;
    this.#limit(() => this.#run(call))
      .catch(this.#o.onFatal)
      .finally(() => this.#settle());
  }

  /** No new records and no first attempts; records being retried finish; those at the gate leave unsent. */
  stop(): void {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#gate.stop();
    this.#room.check();
  }

  /** Stops, and cuts the calls in flight and the backoffs: those records leave unsent. */
  cancel(): void {
    this.stop();
    if (this.#cancelled) return;
    this.#cancelled = true;
    this.#timers.stop();
    this.#throttle.releaseAll();
    for (const call of this.#calls) call.cancel();
  }

  /** Whether the outage gate gave up (maxOutage). */
  get gaveUp(): boolean {
    return this.#gate.gaveUp;
  }

  get throttled(): number {
    return this.#throttle.waited;
  }

  /** min / mean / max of the limit under `adaptive` (undefined otherwise). */
  limitRange(): {min: number; mean: number; max: number} | undefined {
    return this.#adaptive?.range();
  }

  status(): PipelineStatus {
    return {records: this.#records, calls: this.#calls.size, limit: this.#limit.concurrency, outage: this.#gate.status()};
  }

  /** Ends the timers and the sender's streams. Call once idle. */
  close(): Promise<void> {
    if (this.#rampTimer) clearInterval(this.#rampTimer);
    this.#rampTimer = undefined;
    clearInterval(this.#connectTimer);
    this.#gate.stop();
    this.#timers.stop();
    this.#throttle.releaseAll();
    return this.#sender.close();
  }

  #settle(): void {
    this.#records--;
    this.#room.check();
    this.#idle.check();
  }

  async #run(call: PlannedCall): Promise<void> {
    await this.#o.onReport(await this.#attempts(call));
  }

  async #attempts(call: PlannedCall): Promise<CallReport> {
    if (this.#stopping) return {kind: 'unsent', call, attempts: 0};
    const turn = this.#pacer.take();
    if (turn) await turn;
    if (this.#stopping) return {kind: 'unsent', call, attempts: 0};
    this.#o.beforeSend?.();
    const started = performance.now();
    const policy = this.#o.retry;
    let attempts = 0;
    /** Attempts that count against maxAttempts (not those lost to an outage). */
    let counted = 0;
    let outcome: CallOutcome;
    for (;;) {
      const gate = this.#gate.pass();
      if (gate && !(await gate)) return {kind: 'unsent', call, attempts};
      if (this.#rate) await this.#rate.take();
      if (this.#cancelled) return {kind: 'unsent', call, attempts};
      attempts++;
      counted++;
      outcome = await this.#sender.send(call.request, call);
      this.#o.onAttempt?.(outcome.latencyMs);
      if (outcome.ok) {
        this.#gate.onOk();
        this.#throttle.onSuccess();
        this.#sample(outcome.latencyMs, false);
        break;
      }
      if (this.#cancelled && outcome.code === Status.CANCELLED) return {kind: 'unsent', call, attempts};
      const pushback = pushbackMs(outcome.trailers);
      if (isOwnMistake(outcome.details)) this.#gate.onOwnMistake();
      else {
        const outage = this.#gate.onFailure(outcome.code, outcome.details, this.#isConnectionLost(outcome));
        if (outage === true || (outage !== false && (await outage))) {
          // Lost to the outage: not the record's failure. Back to the gate, sent again when the
          // backend is back; or, when the run is stopping, unfinished (a resume sends it again).
          counted--;
          if (this.#stopping) return {kind: 'unsent', call, attempts};
          continue;
        }
      }
      this.#sample(outcome.latencyMs, outcome.code === Status.RESOURCE_EXHAUSTED || pushback !== undefined);
      if (!isRetryable(policy, outcome.code) || pushback === 'stop') break;
      this.#throttle.onRetryableFailure();
      if (counted >= policy.maxAttempts) break;
      const token = this.#throttle.acquire();
      if (token && !(await token)) return {kind: 'unsent', call, attempts};
      if (!(await this.#timers.wait(pushback ?? retryDelayFromStatus(outcome) ?? backoffMs(policy, counted))))
        return {kind: 'unsent', call, attempts};
    }
    return {kind: 'final', call, outcome, attempts, latencyMs: Math.round((performance.now() - started) * 100) / 100};
  }

  /** The attempt failed because the connection is gone (refused, reset, dropped), not because the server said no. */
  #isConnectionLost(outcome: Extract<CallOutcome, {ok: false}>): boolean {
    const code = outcome.code;
    if (code !== Status.UNAVAILABLE && code !== Status.CANCELLED && !(code === Status.INTERNAL && outcome.details.includes('RST_STREAM')))
      return false;
    if (outcome.details.startsWith('No connection established')) return NOT_THERE.test(outcome.details);
    if (NOT_THERE.test(outcome.details) || CONNECTION_LOST.test(outcome.details)) return true;
    return this.#o.pool.connectivity(false) !== 2; // not READY: the answer came from the broken connection
  }

  #sample(latencyMs: number, dropped: boolean): void {
    if (this.#adaptive?.onSample(latencyMs, this.#calls.size + 1, dropped)) this.#applyLimit();
  }

  #currentLimit(): number {
    const cap = this.#adaptive?.limit ?? this.#o.concurrency;
    return this.#o.rampUpMs > 0
      ? Math.min(cap, rampConcurrency(this.#o.concurrency, performance.now() - this.#startedAt, this.#o.rampUpMs))
      : cap;
  }

  #applyLimit(): void {
    const next = this.#currentLimit();
    if (next !== this.#limit.concurrency) this.#limit.concurrency = next;
    this.#room.check();
  }

  #ramp(): void {
    const share = rampShare(performance.now() - this.#startedAt, this.#o.rampUpMs);
    if (this.#rate) this.#rate.setRate(Math.max(1, this.#o.rps * share));
    this.#applyLimit();
    if (share >= 1 && this.#rampTimer) {
      clearInterval(this.#rampTimer);
      this.#rampTimer = undefined;
    }
  }
}
