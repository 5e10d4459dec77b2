import {randomBytes} from 'node:crypto';
import type {Readable} from 'node:stream';
import pLimit from 'p-limit';
import {existsSync} from 'node:fs';
import {getErrorMessage, InternalError, UsageError} from '../errors.js';
import type {Logger} from '../log.js';
import {callUnary, type CallOutcome, type CancellableCall} from '../rpc/call.js';
import {ChannelPool} from '../rpc/channel.js';
import {buildMetadata} from '../rpc/metadata.js';
import {BackoffWaits, backoffMs, cancelledRetry, isRetryable} from '../rpc/retry.js';
import {defaultMaxTokens, RetryThrottle} from '../rpc/retry-throttle.js';
import {Status, statusName} from '../rpc/status.js';
import {countLines, inputLabel, openInput, type InputRecord} from './input.js';
import type {LoadedJob} from './load.js';
import {ProgressTracker, type Checkpoint} from './checkpoint.js';
import {InputShapeHints} from './input-hints.js';
import {checkRunFiles} from './outputs.js';
import {prepareRecord} from './prepare.js';
import {hasLine, readPriorResults} from './resume.js';
import {RateLimiter} from './rate.js';
import {recordKey, resolveResultFields, ORIGIN_SUFFIX} from './record-key.js';
import {LineWriter, runFiles, type RecordOutcome, type RecordResult} from './results.js';
import {RunStats, type RunSummary} from './summary.js';

/** What the progress callback gets, about every `progressIntervalMs`. */
export interface ProgressSnapshot {
  readonly done: number;
  /** Records in the input, once counted (files only). */
  readonly total: number | undefined;
  readonly ok: number;
  readonly failed: number;
  readonly invalid: number;
  readonly inFlight: number;
  readonly attempts: number;
  readonly elapsedMs: number;
}

export interface RunOptions {
  /** @default a new id: UTC time plus 6 random hex digits */
  readonly runId?: string;
  /** Abort to stop gracefully: no new calls start, calls in flight finish. Its reason is the stop reason. */
  readonly signal?: AbortSignal;
  /** Abort to cancel the calls in flight too (a second Ctrl-C). */
  readonly cancelSignal?: AbortSignal;
  readonly onProgress?: (progress: ProgressSnapshot) => void;
  /** @default 1000 */
  readonly progressIntervalMs?: number;
  readonly logger?: Logger;
  /** Stream read when the input is '-'. @default process.stdin */
  readonly stdin?: Readable;
  /**
   * Continue run `runId`: records that already have a line in its results file are not sent again,
   * both files are appended (a half-written last line from a crash is cut off first), and the
   * summary counts the whole run. Needs the same input. @default false
   */
  readonly resume?: boolean;
  /** Called with the run's progress at least every `checkpointIntervalMs`, after the files are flushed, and at the end. */
  readonly onCheckpoint?: (checkpoint: Checkpoint) => void;
  /** @default 1000 */
  readonly checkpointIntervalMs?: number;
  /** Log `run:started` and `run:finished` (the daemon's scheduler logs its own, once per run). @default true */
  readonly logLifecycle?: boolean;
}

/** Buffered result bytes that make the files flush before the end of the event-loop turn. */
const FLUSH_BYTES = 256 * 1024;

/**
 * Most calls started per event-loop turn. Node's HTTP/2 sends a session's frames once per turn, so
 * calls started in one turn reach the server together, are answered together, and come back as
 * one wave that the client handles in one turn again: client and server take turns instead of
 * working at once. Starting at most this many per turn and yielding (`setImmediate`, which runs
 * after HTTP/2's write) lets the first requests leave while the client is still busy with the
 * rest of the wave. Measured in bench/ (100 in flight): +40% calls/s at 0 ms, +25% at 20 ms;
 * 8 beat 4, 16 and 32.
 */
const CALLS_PER_TURN = 8;

/** How many invalid records are logged one by one before the rest are only counted. */
const MAX_LOGGED_INVALID = 20;

/** A run id that sorts by time: 20261125T214500Z-3f9a1c. */
export function newRunId(now = new Date()): string {
  return `${now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}-${randomBytes(3).toString('hex')}`;
}

/**
 * Runs a job: streams its input, fans one unary call per record out through a bounded pool over
 * one shared channel, retries as its policy says, writes one result line per record and the failed
 * records (exactly as input) to the failures file, and resolves with the summary. gRPC failures
 * are counted, not thrown; it rejects only on I/O errors and bugs.
 */
export async function runJob(job: LoadedJob, options: RunOptions = {}): Promise<RunSummary> {
  const {spec, method} = job;
  const runId = options.runId ?? newRunId();
  const log = options.logger;
  // The two files are flushed together, failures first: after a crash, a record whose result line
  // made it to disk has its failure line on disk too.
  checkRunFiles(spec, runId, {resume: options.resume});
  const files = runFiles(spec, runId);
  const output = new LineWriter(files.output, {append: options.resume});
  const failures = new LineWriter(files.failures, {append: options.resume, key: 'failures'});
  // Each failures line's line in the original input, so a re-run of the failures file keeps the keys.
  const origins = new LineWriter(`${files.failures}${ORIGIN_SUFFIX}`, {append: options.resume, key: 'failures'});
  const resultFields = resolveResultFields(spec.resultFields, method, spec.file).fields;
  let flushScheduled = false;
  const flushFiles = () => {
    flushScheduled = false;
    failures.flush();
    origins.flush();
    output.flush();
  };
  if (options.resume && spec.input === '-') throw new UsageError('a run that reads standard input cannot be resumed: its records are gone; save the input to a file');
  output.open();
  if (options.resume && existsSync(failures.path)) failures.open();
  if (options.resume && existsSync(origins.path)) origins.open();
  const stats = new RunStats();
  const prior = options.resume ? await readPriorResults(output.path, stats) : undefined;
  const tracker = new ProgressTracker();
  const pool = new ChannelPool({target: spec.target, tls: spec.tls, channelOptions: spec.channelOptions, channels: spec.channels});
  const callOptions = {
    deadlineMs: spec.deadlineMs,
    metadata: buildMetadata(spec.metadata),
    waitForReady: spec.waitForReady,
    inFlight: new Set<CancellableCall>(),
  };
  const limiter = spec.rps > 0 ? new RateLimiter(spec.rps) : undefined;
  const throttle = new RetryThrottle(spec.retry.throttle ?? {maxTokens: defaultMaxTokens(spec.concurrency), tokenRatio: 1});
  const limit = pLimit(spec.concurrency);
  const {signal, cancelSignal} = options;
  const label = inputLabel(spec);
  const shapes = new InputShapeHints();

  let total: number | undefined;
  if (spec.input && spec.input !== '-') countLines(spec.input).then((n) => (total = n), () => undefined);

  const cancelInFlight = () => {
    log?.warn({job: spec.name, runId, event: 'run:cancelling', inFlight: callOptions.inFlight.size}, 'cancelling calls in flight');
    for (const call of callOptions.inFlight) call.cancel();
  };
  cancelSignal?.addEventListener('abort', cancelInFlight, {once: true});
  const backoffs = new BackoffWaits(cancelSignal);

  const checkpoint = () => {
    flushFiles();
    options.onCheckpoint?.(tracker.snapshot());
  };
  const checkpointTimer = options.onCheckpoint ? setInterval(checkpoint, options.checkpointIntervalMs ?? 1000) : undefined;
  checkpointTimer?.unref();
  if (prior && prior.finished.length > 0) {
    log?.info({job: spec.name, runId, event: 'run:resuming', finished: prior.finished.length}, `resuming: ${prior.finished.length} records already have results; they are not sent again`);
  }

  const progressTimer = options.onProgress
    ? setInterval(() => options.onProgress!(snapshot()), options.progressIntervalMs ?? 1000)
    : undefined;
  progressTimer?.unref();
  const snapshot = (): ProgressSnapshot => ({
    done: stats.done, total, ok: stats.ok, failed: stats.failed, invalid: stats.invalid,
    inFlight: stats.inFlight, attempts: stats.attempts, elapsedMs: performance.now() - stats.startedAt,
  });

  let fatal: unknown;
  let wake: (() => void) | undefined;
  let idle: (() => void) | undefined;

  const finish = async (record: InputRecord, outcome: RecordOutcome) => {
    // `line` first, then `key`: the order a reader of the results file sees.
    const {line, ...rest} = outcome;
    const result = {line, key: recordKey(record, resultFields), ...rest} as RecordResult;
    if (result.status !== 'OK') {
      if (record.span) failures.copyLine(record.span.file, record.span.offset, record.span.length);
      else failures.write(record.raw ?? record.text);
      origins.write(String(result.key.line));
    }
    output.write(JSON.stringify(result));
    tracker.finish(record.line);
    if (output.bufferedBytes >= FLUSH_BYTES) flushFiles();
    else if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flushFiles);
    }
    if (spec.onResult) await spec.onResult(result);
  };

  const callRecord = async (record: InputRecord, request: Buffer) => {
    const started = performance.now();
    let attempts = 0;
    let outcome: CallOutcome;
    for (;;) {
      attempts++;
      if (limiter) await limiter.take();
      stats.attempts++;
      outcome = await callUnary(pool.pick(), method, request, callOptions);
      stats.recordLatency(outcome.latencyMs);
      if (outcome.ok) {
        throttle.onSuccess();
        break;
      }
      if (!isRetryable(spec.retry, outcome.code)) break;
      throttle.onRetryableFailure();
      if (attempts >= spec.retry.maxAttempts) break;
      if (!throttle.isRetryAllowed()) {
        stats.throttled++;
        break;
      }
      // A cancel (second Ctrl-C) ends a record that would be retried as CANCELLED, waiting or not.
      if (!(await backoffs.wait(backoffMs(spec.retry, attempts)))) {
        outcome = cancelledRetry(outcome, attempts);
        break;
      }
    }
    const latencyMs = Math.round((performance.now() - started) * 100) / 100;
    const code = outcome.ok ? Status.OK : outcome.code;
    stats.recordFinal(code, attempts, outcome.ok ? undefined : outcome.details);
    await finish(
      record,
      outcome.ok
        ? {line: record.line, status: 'OK', attempts, latencyMs, response: outcome.response}
        : {line: record.line, status: statusName(code), code, error: outcome.details, attempts, latencyMs},
    );
  };

  let thresholdReason: string | undefined;
  const checkThresholds = () => {
    if (thresholdReason) return;
    if (spec.maxInvalid !== undefined && stats.invalid > spec.maxInvalid) {
      thresholdReason = `maxInvalid: ${stats.invalid} invalid records, more than the job allows (${spec.maxInvalid})`;
    } else if (spec.maxFailures !== undefined && stats.failed > spec.maxFailures) {
      thresholdReason = `maxFailures: ${stats.failed} failed records, more than the job allows (${spec.maxFailures})`;
    }
    if (thresholdReason) {
      log?.error({job: spec.name, runId, event: 'run:aborting', reason: thresholdReason}, `stopping the run: ${thresholdReason}`);
      wake?.();
    }
  };

  const settle = () => {
    checkThresholds();
    stats.inFlight--;
    const resume = wake;
    wake = undefined;
    resume?.();
    if (stats.inFlight === 0) idle?.();
  };

  const source = openInput(spec, {stdin: options.stdin, onWarning: (message) => log?.warn({job: spec.name, runId, event: 'input:origins'}, message)});
  if (options.logLifecycle !== false) log?.info({job: spec.name, runId, event: 'run:started', target: spec.target, method: method.name, concurrency: spec.concurrency, input: label}, 'run started');
  // Stop waiting for input (a slow stdin, a module's generator) as soon as the run is stopped.
  const iterator = source[Symbol.asyncIterator]();
  const STOPPED = Symbol('stopped');
  // A fresh promise per read that the stop can settle, not `Promise.race` against one long-lived
  // `stopped` promise: each race adds a reaction to it, which keeps every record read (the race's
  // result) in memory until the run ends, so memory grew with the input.
  let stopRead: ((value: typeof STOPPED) => void) | undefined;
  const abortStop = () => {
    stopRead?.(STOPPED);
    wake?.();
  };
  if (!signal?.aborted) signal?.addEventListener('abort', abortStop, {once: true});
  const nextRecord = () => new Promise<IteratorResult<InputRecord> | typeof STOPPED>((resolve, reject) => {
    stopRead = resolve;
    iterator.next().then(resolve, reject);
  });
  // Calls started in this event-loop turn (see CALLS_PER_TURN).
  let startedThisTurn = 0;
  const endTurn = () => (startedThisTurn = 0);
  const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));
  const isStopping = () => Boolean(signal?.aborted || fatal || thresholdReason);
  try {
    for (;;) {
      if (isStopping()) break;
      const next = await nextRecord();
      if (next === STOPPED || next.done || isStopping()) break;
      const record = next.value;
      if (prior && hasLine(prior.finished, record.line)) {
        tracker.read(record.line);
        tracker.finish(record.line);
        continue;
      }
      const prepared = prepareRecord(record, method);
      if (typeof prepared === 'string') {
        stats.total++;
        stats.lastLine = record.line;
        stats.recordInvalid(prepared);
        tracker.read(record.line);
        if (stats.invalid <= MAX_LOGGED_INVALID) log?.warn({job: spec.name, runId, event: 'record:invalid', line: record.line}, `${label}:${record.line}: ${prepared}`);
        const hint = shapes.observe(record, label);
        if (hint) log?.warn({job: spec.name, runId, event: 'input:hint'}, hint);
        await finish(record, {line: record.line, status: 'INVALID', error: prepared, attempts: 0});
        checkThresholds();
        continue;
      }
      while (stats.inFlight >= spec.concurrency && !isStopping()) await new Promise<void>((resolve) => (wake = resolve));
      if (startedThisTurn >= CALLS_PER_TURN) await nextTurn();
      if (isStopping()) break;
      if (startedThisTurn++ === 0) setImmediate(endTurn);
      // A slot is reused only once the results of the calls that freed it are on disk: so after a
      // crash, the records without a result line are at most the `concurrency` last ones sent.
      if (output.bufferedBytes > 0) flushFiles();
      stats.total++;
      stats.lastLine = record.line;
      stats.inFlight++;
      tracker.read(record.line);
      limit(callRecord, record, prepared).catch((error: unknown) => (fatal ??= error)).finally(settle);
    }
  } catch (error) {
    fatal ??= error;
  } finally {
    // Not awaited: a generator blocked on input cannot return until its pending read resolves.
    iterator.return?.(undefined).catch(() => undefined);
    signal?.removeEventListener('abort', abortStop);
    if (stats.inFlight > 0) await new Promise<void>((resolve) => (idle = resolve));
    if (progressTimer) clearInterval(progressTimer);
    if (checkpointTimer) clearInterval(checkpointTimer);
    cancelSignal?.removeEventListener('abort', cancelInFlight);
    backoffs.close();
    pool.close();
    try {
      flushFiles();
      if (options.onCheckpoint) options.onCheckpoint(tracker.snapshot());
    } catch (error) {
      fatal ??= error;
    }
    const closing = await Promise.allSettled([failures.close(), origins.close(), output.close()]);
    for (const result of closing) if (result.status === 'rejected') fatal ??= result.reason;
  }
  if (fatal) {
    throw fatal instanceof InternalError ? fatal : new InternalError(`run ${runId} of ${spec.name} aborted: ${getErrorMessage(fatal)}`, {cause: fatal});
  }
  if (stats.invalid > MAX_LOGGED_INVALID) log?.warn({job: spec.name, runId, event: 'record:invalid', count: stats.invalid}, `${stats.invalid - MAX_LOGGED_INVALID} more invalid records are in ${failures.path}`);
  options.onProgress?.({...snapshot(), total: total ?? stats.total});
  const stopReason = signal?.aborted ? String(signal.reason instanceof Error ? signal.reason.message : signal.reason ?? 'stopped') : undefined;
  const summary = stats.summarize({
    job: spec.name,
    runId,
    output: output.path,
    ...(stopReason ? {stopReason} : {}),
    ...(thresholdReason && !stopReason ? {abortReason: thresholdReason} : {}),
    ...(failures.isOpen ? {failures: failures.path} : {}),
    explain: {target: spec.target, tls: spec.tls !== undefined, deadlineMs: spec.deadlineMs},
    inputRecords: total,
  });
  if (options.logLifecycle !== false) log?.info({job: spec.name, runId, event: 'run:finished', status: summary.status, total: summary.total, ok: summary.ok, failed: summary.failed, invalid: summary.invalid}, 'run finished');
  return summary;
}
