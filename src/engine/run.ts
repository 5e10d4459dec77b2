import {randomBytes} from 'node:crypto';
import type {Readable} from 'node:stream';
import {getErrorMessage, InternalError, UsageError} from '../errors.js';
import {removeIfEmpty} from '../util/durable.js';
import {RunFilesLock} from '../util/file-lock.js';
import type {Logger} from '../util/log.js';
import type {OutageEvent} from '../rpc/outage-gate.js';
import {describeChoices, runChoices} from './choices.js';
import {countRegularFileLines, inputLabel, openInput, readsStdin, statusCounts, type InputRecord} from '../io/input.js';
import type {LoadedJob} from '../config/load.js';
import {readPriorResults} from '../io/resume.js';
import {InputShapeHints} from '../io/input-hints.js';
import {checkRunFiles} from '../config/outputs.js';
import {recordPlan} from './prepare.js';
import {moduleResumeProblem, readsModuleRequests, RecordIdentities} from '../io/record-identity.js';
import {recordKey, resolveResultFields} from '../io/record-key.js';
import {runFiles, withKey, type RecordOutcome, type RecordResult} from '../io/results.js';
import {cleanDetails, hintFor} from '../rpc/explain.js';
import {Status} from '../codec/status.js';
import {stopReasonOf, type StopReason} from '../stop-reason.js';
import {InputDigest, type InputRead} from '../io/input-digest.js';
import type {Executor, ExecutorEvents, RecordCall} from './executor.js';
import {InlineExecutor} from './executor-inline.js';
import {ThreadExecutor} from './executor-threads.js';
import {Plan} from './plan.js';
import {Sink} from '../io/sink.js';
import {RunStats, type RunSummary} from './stats.js';

/** What the progress callback gets, about every `progressIntervalMs`. */
export interface ProgressSnapshot {
  readonly done: number;
  /** Records in the input, once counted (regular files only). */
  readonly total: number | undefined;
  readonly ok: number;
  readonly failed: number;
  readonly invalid: number;
  /** Records in the pool: sending, waiting for a retry, or held at the outage gate. */
  readonly inFlight: number;
  /** Calls on the wire now. */
  readonly calls: number;
  /** Records allowed in the pool now (the cap, or less under `adaptive` and `rampUp`). */
  readonly limit: number;
  /** The job's `concurrency`: the cap of `limit`. */
  readonly cap: number;
  readonly attempts: number;
  readonly elapsedMs: number;
  /** Set while the run waits for an unreachable backend: for how long, and the last error. */
  readonly waiting?: {readonly forMs: number; readonly reason: string};
}

/**
 * A run's progress as a checkpoint records it, about every second once its files are flushed and
 * fsynced, and at its end. `--resume` does not need it to find the records to send (it reads the
 * results file back); it notices with it a results file moved away or cut short.
 */
export interface Checkpoint {
  /** Result lines in the results file, all on disk (a resumed run's earlier lines included). */
  readonly results: number;
}

export interface RunOptions {
  /** @default a new id: UTC time plus 6 random hex digits */
  readonly runId?: string;
  /** Abort to stop gracefully: no new calls start, calls in flight finish. Its reason is the stop reason. */
  readonly signal?: AbortSignal;
  /** Abort to cancel the calls in flight too (a second Ctrl-C): they get no result, a resume sends them. */
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
  /** Called with the result lines on disk at least every `checkpointIntervalMs`, once both files are flushed and fsynced, and at the end. */
  readonly onCheckpoint?: (checkpoint: Checkpoint) => unknown;
  /** @default 1000 */
  readonly checkpointIntervalMs?: number;
  /**
   * Called with how much of an input file has been read and its hash, before any record read from
   * those bytes gets a result (awaited when it returns a promise). `--resume` compares the input against it.
   */
  readonly onInputRead?: (read: InputRead) => void | Promise<void>;
  /** Runs the records elsewhere (the queue of a distributed run: src/scale); by default on this machine. */
  readonly executor?: (events: ExecutorEvents, flush: () => void) => Executor;
  /**
   * The lock on the run's files, when the caller took it (to hold it until the run's end is
   * recorded), after `checkRunFiles`. @default the run checks and takes it itself, and refuses
   * files another run holds
   */
  readonly filesLock?: RunFilesLock;
  /** Log `run:started` and `run:finished` (the daemon's scheduler logs its own, once per run). @default true */
  readonly logLifecycle?: boolean;
  /**
   * The input is a failures file: send only its records that failed with one of these statuses
   * (`UNAVAILABLE`, `INVALID`), read from its `.lines` file (`--only-status`).
   */
  readonly onlyStatus?: ReadonlySet<string> | undefined;
}

/** Not a gRPC status: marks an invalid record for the sink (it goes to the failures file). */
const INVALID_CODE = -1;

/** How many invalid records are logged one by one before the rest are only counted. */
const MAX_LOGGED_INVALID = 20;

/** A run id that sorts by time: 20261125T214500Z-3f9a1c. */
export function newRunId(now = new Date()): string {
  return `${now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z')}-${randomBytes(3).toString('hex')}`;
}

/**
 * Runs a job: the plan reads and encodes its input, the pipeline fans the records out through one
 * bounded pool over one shared channel (retries, flow control), the sink writes one result line per
 * record and the failed records (exactly as input) to the failures file, and the stats make the
 * summary. gRPC failures are counted, not thrown; it rejects only on I/O errors and bugs.
 */
export async function runJob(job: LoadedJob, options: RunOptions = {}): Promise<RunSummary> {
  const {spec, method} = job;
  const runId = options.runId ?? newRunId();
  const log = options.logger?.child({job: spec.name, runId});
  if (options.resume && readsStdin(spec.input))
    throw new UsageError('a run that reads standard input cannot be resumed: its records are gone; save the input to a file');
  // A job module's records are told apart by their key (resultFields), never by their position.
  const byKey = readsModuleRequests(spec);
  const noKey = options.resume ? moduleResumeProblem(spec, runId, undefined) : undefined;
  if (noKey) throw new UsageError(noKey);
  const label = inputLabel(spec);
  const files = runFiles(spec, runId);
  // Before the lock makes the files: an earlier run's results are never overwritten (exit 2,
  // nothing sent). A caller that locks the files checks them first.
  if (!options.filesLock) checkRunFiles(spec, runId, {resume: options.resume});
  const shapes = new InputShapeHints();
  const resultFields = resolveResultFields(spec.resultFields, method, spec.file).fields;
  const explain = {target: spec.target, tls: spec.tls !== undefined, deadlineMs: spec.deadlineMs};
  const ownLock = options.filesLock ? undefined : RunFilesLock.acquire(files);
  const sink = new Sink(files, {append: options.resume});
  try {
    sink.open(Boolean(options.resume));
  } catch (error) {
    ownLock?.release();
    throw error;
  }
  const stats = new RunStats();
  const prior = options.resume ? await readPriorResults(sink.outputPath, stats, byKey ? resultFields : undefined) : undefined;
  if (prior?.sentWithoutKey) {
    await sink.close().catch(() => undefined);
    ownLock?.release();
    const names = (prior.missingKeyFields ?? spec.resultFields).join(', ');
    throw new UsageError(
      `run ${runId}: ${prior.sentWithoutKey} records sent by an earlier attempt have no ${names} in their key in ${sink.outputPath} (resultFields changed since the run started, or it was started by an older grpc-batch): a job module's run is resumed by key, so these records cannot be told apart; start a new run`,
    );
  }
  const identities =
    byKey && spec.resultFields.length > 0 ? {keys: new RecordIdentities(resultFields, prior?.keys), fields: resultFields} : undefined;
  /** Result lines in the results file before this attempt (a resume appends to it). */
  const priorResults = prior ? prior.finished.length + prior.unreadable : 0;
  const {signal, cancelSignal} = options;

  let fatal: unknown;
  let thresholdReason: string | undefined;
  let threshold: StopReason | undefined;
  let interruptReason: string | undefined;
  const stopWith = (why: 'fatal' | 'threshold' | 'interrupt' | 'signal') => {
    plan.stop();
    if (why === 'fatal') executor.cancel();
    else executor.stop();
  };

  /** Writes a record's result (an object, or the JSON line a worker thread made of it), with its key. */
  const finish = async (record: InputRecord, outcome: RecordOutcome | string, code: number) => {
    const result = withKey(outcome, recordKey(record, resultFields, spec.inputFormat));
    sink.write(record, result, code);
    if (spec.onResult) await spec.onResult(typeof result === 'string' ? (JSON.parse(result) as RecordResult) : result);
  };
  const checkThresholds = () => {
    if (thresholdReason) return;
    if (spec.maxInvalid !== undefined && stats.invalid > spec.maxInvalid) {
      thresholdReason = `maxInvalid: ${stats.invalid} invalid records, more than the job allows (${spec.maxInvalid})`;
      threshold = 'maxInvalid';
    } else if (spec.maxFailures !== undefined && stats.failed > spec.maxFailures) {
      thresholdReason = `maxFailures: ${stats.failed} failed records, more than the job allows (${spec.maxFailures})`;
      threshold = 'maxFailures';
    }
    if (!thresholdReason) return;
    log?.error({event: 'run:aborting', reason: thresholdReason}, `stopping the run: ${thresholdReason}`);
    stopWith('threshold');
  };
  const streamsReplies = method.kind === 'server-streaming';
  let replies = prior?.replies ?? 0;
  const onFinal = (
    call: RecordCall,
    code: number,
    attempts: number,
    result: RecordOutcome | string,
    details: string | undefined,
  ): Promise<void> => {
    stats.recordFinal(code, attempts, details);
    if (streamsReplies && code === Status.OK) {
      // A worker thread's result is its JSON line; only a server-streaming run reads it back, to count.
      const response =
        typeof result === 'string' ? (JSON.parse(result) as {response?: unknown}).response : (result as {response?: unknown}).response;
      if (Array.isArray(response)) replies += response.length;
    }
    const done = finish(call.record, result, code);
    if (code !== Status.OK) checkThresholds();
    return done;
  };
  const onOutage = (event: OutageEvent) => {
    if (event.type === 'down') {
      const hint = hintFor(Status.UNAVAILABLE, event.reason, explain);
      log?.warn(
        {event: 'backend:down', reason: event.reason, ...(hint ? {hint} : {})},
        `waiting for the backend: ${cleanDetails(event.reason)}${hint ? ` (hint: ${hint})` : ''}`,
      );
    } else if (event.type === 'up')
      log?.info(
        {event: 'backend:up', pausedMs: Math.round(event.pausedMs)},
        `the backend is back after ${(event.pausedMs / 1000).toFixed(1)}s; the run goes on`,
      );
    else {
      interruptReason = event.reason;
      log?.error({event: 'run:interrupted', reason: event.reason}, `stopping the run: ${cleanDetails(event.reason)}`);
      stopWith('interrupt');
    }
  };
  const events: ExecutorEvents = {
    onFinal,
    onUnsent: () => undefined, // no result: a resume sends it again
    onOutage,
    onFatal: (error) => {
      fatal ??= error;
      stopWith('fatal');
    },
  };
  const executor: Executor = options.executor
    ? options.executor(events, () => sink.flush())
    : spec.workers > 1
      ? new ThreadExecutor(spec, spec.workers, events, () => sink.flush(), method)
      : new InlineExecutor(spec, method, events, () => sink.flushIfDirty());
  sink.onError(events.onFatal);
  // An input file is hashed as it is read: its hash is recorded before its records are sent.
  const digest =
    options.onInputRead && spec.input !== undefined && !spec.requests && !readsStdin(spec.input) ? new InputDigest() : undefined;
  let digested = 0;
  const onlyStatus = options.onlyStatus;
  const plan = new Plan(
    openInput(spec, {digest, stdin: options.stdin, onWarning: (message) => log?.warn({event: 'input:origins'}, message), onlyStatus}),
    method,
    byKey ? undefined : prior?.finished,
    recordPlan(spec, method),
    identities,
  );

  let total: number | undefined;
  if (onlyStatus && spec.input) {
    const counts = statusCounts(spec.input);
    const kept = [...counts].filter(([status]) => onlyStatus.has(status));
    const left = [...counts].filter(([status]) => !onlyStatus.has(status));
    total = kept.reduce((sum, [, n]) => sum + n, 0);
    const show = (entries: [string, number][]) => entries.map(([status, n]) => `${status} ${n}`).join(', ') || 'none';
    log?.info(
      {event: 'input:only-status', sent: Object.fromEntries(kept), left: Object.fromEntries(left)},
      `--only-status: sending the ${total} records of ${label} that failed with ${show(kept)}; not sending ${show(left)}`,
    );
  } else {
    // A regular file only: a pipe or a FIFO can be read once, by the plan.
    countRegularFileLines(spec)?.then(
      (n) => (total = n),
      () => undefined,
    );
  }
  const onStop = () => stopWith('signal');
  const onCancel = () => {
    log?.warn({event: 'run:cancelling', inFlight: executor.status().calls}, 'cancelling calls in flight');
    executor.cancel();
  };
  if (signal?.aborted) onStop();
  else signal?.addEventListener('abort', onStop, {once: true});
  if (cancelSignal?.aborted) onCancel();
  else cancelSignal?.addEventListener('abort', onCancel, {once: true});

  const snapshot = (): ProgressSnapshot => {
    const now = executor.status();
    return {
      done: stats.done,
      total,
      ok: stats.ok,
      failed: stats.failed,
      invalid: stats.invalid,
      inFlight: now.records,
      calls: now.calls,
      limit: now.limit,
      cap: spec.concurrency,
      attempts: stats.attempts + executor.attempts,
      elapsedMs: performance.now() - stats.startedAt,
      ...(now.outage.paused ? {waiting: {forMs: now.outage.pausedForMs, reason: now.outage.reason ?? 'no answer'}} : {}),
    };
  };
  // Flushed, then fsynced (failures first, off the event loop), then recorded: a checkpoint never
  // points past what is on disk, so a power cut keeps every record older than the last checkpoint.
  let checkpointing: Promise<void> | undefined;
  const checkpoint = () => {
    if (checkpointing || fatal) return;
    try {
      sink.flush();
    } catch (error) {
      return events.onFatal(error);
    }
    const taken = {results: priorResults + sink.results};
    checkpointing = sink
      .sync()
      .then(async () => {
        if (!fatal) await options.onCheckpoint?.(taken);
      })
      .catch(events.onFatal)
      .finally(() => (checkpointing = undefined));
  };
  const timers = [
    options.onProgress ? setInterval(() => options.onProgress!(snapshot()), options.progressIntervalMs ?? 1000) : undefined,
    options.onCheckpoint ? setInterval(checkpoint, options.checkpointIntervalMs ?? 1000) : undefined,
  ];
  for (const timer of timers) timer?.unref();
  if (prior && prior.finished.length > 0) {
    log?.info(
      {event: 'run:resuming', finished: prior.finished.length},
      `resuming: ${prior.finished.length} records already have results; they are not sent again${identities ? ` (found by their key: ${spec.resultFields.join(', ')})` : ''}`,
    );
  }
  const chosen = runChoices(spec, options.executor !== undefined);
  if (options.logLifecycle !== false) {
    log?.info(
      {
        event: 'run:started',
        target: spec.target,
        method: method.name,
        concurrency: spec.concurrency,
        input: label,
        workers: chosen.workers,
        workersSetting: chosen.workersSetting,
        executor: chosen.executor,
        schema: chosen.schema,
        transport: chosen.transport,
      },
      `run started: ${describeChoices(chosen)}`,
    );
  }

  try {
    for (;;) {
      if (!executor.hasRoom) await executor.room();
      if (signal?.aborted || fatal || thresholdReason || interruptReason) break;
      const item = await plan.next();
      if (!item) break;
      const {record} = item;
      if (item.kind === 'done') continue;
      if (digest && digest.bytes > digested) {
        digested = digest.bytes;
        await options.onInputRead!(digest.snapshot());
      }
      stats.total++;
      stats.lastLine = record.line;
      if (item.kind === 'invalid') {
        stats.recordInvalid(item.error);
        if (stats.invalid <= MAX_LOGGED_INVALID)
          log?.warn({event: 'record:invalid', line: record.line}, `${label}:${record.line}: ${item.error}`);
        const hint = shapes.observe(record, label);
        if (hint) log?.warn({event: 'input:hint'}, hint);
        await finish(record, {line: record.line, status: 'INVALID', error: item.error, attempts: 0}, INVALID_CODE);
        checkThresholds();
        continue;
      }
      executor.submit({...item.call, record});
    }
  } catch (error) {
    fatal ??= error;
    executor.cancel();
  } finally {
    plan.close();
    signal?.removeEventListener('abort', onStop);
    await executor.idle();
    await executor.close();
    executor.collectLatencies(stats);
    for (const timer of timers) if (timer) clearInterval(timer);
    cancelSignal?.removeEventListener('abort', onCancel);
    await checkpointing;
    // Closing flushes and fsyncs both files; the last checkpoint is recorded only then.
    await sink.close().catch((error: unknown) => (fatal ??= error));
    try {
      if (!fatal) await options.onCheckpoint?.({results: priorResults + sink.results});
    } catch (error) {
      fatal ??= error;
    }
    if (stats.failed + stats.invalid === 0) removeIfEmpty(sink.failuresPath); // made by the lock, never written
    ownLock?.release();
  }
  if (fatal) {
    // A disk or state fault, a lost backend store, a bug: the run stops (resumable once fixed), with what it did.
    const error =
      fatal instanceof InternalError
        ? fatal
        : new InternalError(`run ${runId} of ${spec.name} aborted: ${getErrorMessage(fatal)}`, {cause: fatal});
    stats.throttled = executor.throttled;
    error.summary = stats.summarize({
      job: spec.name,
      runId,
      output: sink.outputPath,
      interruptReason: error.message,
      stop: stopReasonOf(error),
      failures: sink.hasFailures ? sink.failuresPath : undefined,
      explain,
      inputRecords: total,
    });
    throw error;
  }
  if (stats.invalid > MAX_LOGGED_INVALID)
    log?.warn(
      {event: 'record:invalid', count: stats.invalid},
      `${stats.invalid - MAX_LOGGED_INVALID} more invalid records are in ${sink.failuresPath}`,
    );
  options.onProgress?.({...snapshot(), attempts: stats.attempts, total: total ?? stats.total});
  const stopReason = signal?.aborted
    ? String(signal.reason instanceof Error ? signal.reason.message : (signal.reason ?? 'stopped'))
    : undefined;
  const outage = executor.status().outage;
  const limitRange = executor.limitRange();
  stats.throttled = executor.throttled;
  const summary = {
    ...stats.summarize({
      job: spec.name,
      runId,
      output: sink.outputPath,
      stopReason,
      abortReason: thresholdReason && !stopReason ? thresholdReason : undefined,
      interruptReason: !stopReason ? interruptReason : undefined,
      stop: stopReason ? 'signal' : interruptReason ? 'outage' : thresholdReason ? threshold : undefined,
      failures: sink.hasFailures ? sink.failuresPath : undefined,
      outages: {pauses: outage.pauses, pausedMs: outage.pausedMs},
      concurrencyLimit: limitRange,
      explain,
      inputRecords: total,
    }),
    chosen,
    ...(streamsReplies ? {replies} : {}),
  };
  if (options.logLifecycle !== false)
    log?.info(
      {
        event: 'run:finished',
        status: summary.status,
        total: summary.total,
        ok: summary.ok,
        failed: summary.failed,
        invalid: summary.invalid,
      },
      'run finished',
    );
  return summary;
}
