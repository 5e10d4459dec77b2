import {hostname} from 'node:os';
import {randomBytes} from 'node:crypto';
import {UnrecoverableError, WaitingError, Worker, type Job} from 'bullmq';
import type {Redis} from 'ioredis';
import {getErrorMessage, ValidationError} from '../errors.js';
import type {Logger} from '../util/log.js';
import type {ChannelPool} from '../rpc/channel.js';
import type {MethodHandle} from '../schema/method-handle.js';
import {channelPoolFor} from '../engine/executor-inline.js';
import type {ChunkData, ChunkReturn} from './chunk.js';
import {ChunkRun} from './chunk-runner.js';
import {methodFromJson} from './method-json.js';
import {chunkJobKey, CHUNKS_QUEUE, isOutOfMemory, outOfMemoryMessage, runKeys, watchBullmq} from './redis.js';
import {describeIssues, resolveRun, type ShippedRun, type WorkerSpec} from './run-spec.js';
import {DEFAULT_WORKER_CHUNKS} from './target.js';

export interface ChunkWorkerOptions {
  readonly redis: Redis;
  readonly prefix: string;
  /** Chunks run at once (of any runs). Minimum: 1. @default 8 */
  readonly chunks?: number;
  /** How long a chunk stays this worker's without a lock renewal before another takes it over. @default 30_000 */
  readonly lockDurationMs?: number;
  readonly logger?: Logger;
  /** Where `${VAR}` of a run's metadata and TLS are read. @default process.env */
  readonly env?: NodeJS.ProcessEnv;
  /** Events for metrics. */
  readonly onChunk?: (event: ChunkEvent) => void;
}

export type ChunkEvent =
  | {readonly type: 'started'; readonly job: string; readonly run: string; readonly chunk: number}
  | {readonly type: 'done'; readonly job: string; readonly run: string; readonly chunk: number; readonly ok: number; readonly failed: number; readonly unsent: number; readonly attempts: number}
  | {readonly type: 'failed'; readonly run: string; readonly chunk: number; readonly error: string}
  | {readonly type: 'handed-back'; readonly run: string; readonly chunk: number};

export const DEFAULT_LOCK_DURATION_MS = 30_000;
/** A chunk that stalled this often (its workers died or froze) fails instead of going round again. */
const MAX_STALLS = 5;
/** How often a running chunk reports progress and looks for a stop or cancel of its run. */
const PROGRESS_MS = 500;
/** Results of a chunk wait this long for their coordinator (one that died and is resumed later); past it they are sent again. */
export const RESULTS_TTL_MS = 24 * 3600_000;
/** A run's channels are closed after this long without a chunk of it. */
const IDLE_RUN_MS = 30_000;

interface RunContext {
  readonly shipped: ShippedRun;
  readonly spec: WorkerSpec;
  readonly method: MethodHandle;
  readonly pool: ChannelPool;
  active: number;
  idleSince: number;
}

/**
 * `grpc-batch worker`: takes chunks of any run from the queue and runs each with the same pipeline
 * as a local run, over one channel pool per run (kept while the run has chunks here). A run's
 * settings and method come from Redis; its secrets are resolved here. Results go to a key of their
 * own; BullMQ's lock makes a dead worker's chunk go to another (at least once).
 */
export class ChunkWorker {
  readonly #o: ChunkWorkerOptions;
  readonly #worker: Worker<ChunkData, ChunkReturn>;
  readonly #runs = new Map<string, Promise<RunContext>>();
  readonly #active = new Map<string, {run: ChunkRun; handBack: boolean}>();
  readonly #sweep: NodeJS.Timeout;
  readonly #name = `${hostname()} pid ${process.pid}`;
  #closing: Promise<void> | undefined;

  constructor(options: ChunkWorkerOptions) {
    this.#o = options;
    const lockDuration = options.lockDurationMs ?? DEFAULT_LOCK_DURATION_MS;
    this.#worker = new Worker<ChunkData, ChunkReturn>(CHUNKS_QUEUE, (job, token) => this.#process(job, token), {
      connection: options.redis,
      prefix: options.prefix,
      concurrency: options.chunks ?? DEFAULT_WORKER_CHUNKS,
      lockDuration,
      stalledInterval: lockDuration,
      maxStalledCount: MAX_STALLS,
      autorun: true,
    });
    // Connection faults: one line each (`redis:error`, then `redis:recovered`), not one per reconnect.
    watchBullmq(options.redis, this.#worker);
    // A chunk whose job expired while queued (its run's coordinator died, never resumed): BullMQ
    // writes the failure into a new job hash, without a TTL; it is removed, so nothing is left.
    this.#worker.on('failed', (job) => {
      if (job?.id && typeof job.data?.run !== 'string') options.redis.del(chunkJobKey(options.prefix, job.id)).catch(() => undefined);
    });
    this.#sweep = setInterval(() => this.#closeIdleRuns(), IDLE_RUN_MS / 3);
    this.#sweep.unref();
  }

  /** Resolves once the worker is connected and taking chunks. */
  waitUntilReady(): Promise<unknown> {
    return this.#worker.waitUntilReady();
  }

  get isRunning(): boolean {
    return this.#worker.isRunning() && !this.#closing;
  }

  /** Chunks running now. */
  get activeChunks(): number {
    return this.#active.size;
  }

  /**
   * Takes no new chunk; the chunks running finish for up to `graceMs`, then are handed back to the
   * queue (another worker runs them again, whole). Idempotent.
   */
  close(graceMs = 30_000): Promise<void> {
    return (this.#closing ??= (async () => {
      const closed = this.#worker.close();
      let timer: NodeJS.Timeout | undefined;
      const expired = await Promise.race([closed.then(() => false), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), graceMs)))]);
      clearTimeout(timer);
      if (expired) this.handBack();
      await closed;
      clearInterval(this.#sweep);
      for (const context of this.#runs.values()) context.then((c) => c.pool.close(), () => undefined);
      this.#runs.clear();
    })());
  }

  /** Stops the chunks running now and hands them back to the queue (a second SIGTERM). */
  handBack(): void {
    for (const entry of this.#active.values()) {
      entry.handBack = true;
      entry.run.cancel();
    }
  }

  async #process(job: Job<ChunkData, ChunkReturn>, token: string | undefined): Promise<ChunkReturn> {
    const data = job.data;
    if (typeof data?.run !== 'string') throw new UnrecoverableError(`chunk ${job.id} expired in Redis (its run's coordinator died and was not resumed within GRPC_BATCH_KEYS_TTL): nothing to run`);
    const context = await this.#context(data.run);
    context.active++;
    const run = new ChunkRun(data, context.spec, context.method, context.pool);
    const entry = {run, handBack: false};
    this.#active.set(job.id!, entry);
    const log = this.#o.logger?.child({job: context.shipped.job, run: data.run, chunk: data.chunk});
    this.#o.onChunk?.({type: 'started', job: context.shipped.job, run: data.run, chunk: data.chunk});
    const keys = runKeys(this.#o.prefix, data.run);
    let reporting = false;
    const report = setInterval(() => {
      if (reporting) return; // Redis slow or paused: one report at a time
      reporting = true;
      Promise.all([job.updateProgress({...run.progress()}), this.#o.redis.get(keys.control)]).then(([, control]) => {
        if (control === 'cancel') run.cancel();
        else if (control === 'stop') run.stop();
      }, () => undefined).finally(() => (reporting = false));
    }, PROGRESS_MS);
    const started = performance.now();
    try {
      // A run stopped or cancelled before this chunk began: none of it is sent.
      if (await this.#o.redis.get(keys.control)) run.stop();
      const outcome = await run.run();
      if (entry.handBack) {
        // Whole, to another worker: what this one sent of it is sent again (at least once).
        await job.moveToWait(token);
        this.#o.onChunk?.({type: 'handed-back', run: data.run, chunk: data.chunk});
        log?.warn({event: 'chunk:handed-back', records: data.lines.length}, `chunk ${data.chunk} of run ${data.run} handed back to the queue`);
        throw new WaitingError();
      }
      const results = keys.results(job.id!, `${job.attemptsStarted}-${randomBytes(3).toString('hex')}`);
      try {
        await this.#o.redis.set(results, outcome.lines.join('\n'), 'PX', context.shipped.keysTtlMs ?? RESULTS_TTL_MS);
      } catch (error) {
        if (!isOutOfMemory(error)) throw error;
        // Redis is full: this run's other chunks here would fail the same way; none is run again (the coordinator stops the run).
        for (const other of this.#active.values()) if (other !== entry && other.run.runId === data.run) other.run.stop();
        throw new UnrecoverableError(outOfMemoryMessage(data.run, undefined));
      }
      const {lines: _lines, ...rest} = outcome;
      const value: ChunkReturn = {...rest, results, records: data.lines.length, worker: this.#name};
      this.#o.onChunk?.({type: 'done', job: context.shipped.job, run: data.run, chunk: data.chunk, ok: outcome.ok, failed: outcome.failed, unsent: outcome.unsent.length, attempts: outcome.attempts});
      log?.info({event: 'chunk:done', records: data.lines.length, ok: outcome.ok, failed: outcome.failed, unsent: outcome.unsent.length, attempts: outcome.attempts, ms: Math.round(performance.now() - started)},
        `chunk ${data.chunk} of run ${data.run}: ${outcome.ok} ok, ${outcome.failed} failed${outcome.unsent.length ? `, ${outcome.unsent.length} unsent` : ''}`);
      return value;
    } catch (error) {
      if (!(error instanceof WaitingError)) {
        this.#o.onChunk?.({type: 'failed', run: data.run, chunk: data.chunk, error: getErrorMessage(error)});
        log?.error({event: 'chunk:failed', error: getErrorMessage(error)}, `chunk ${data.chunk} of run ${data.run} failed: ${getErrorMessage(error)}`);
      }
      throw error;
    } finally {
      clearInterval(report);
      this.#active.delete(job.id!);
      context.active--;
      context.idleSince = Date.now();
    }
  }

  /** The run's settings, method and channels: read from Redis once per run. */
  #context(runId: string): Promise<RunContext> {
    let context = this.#runs.get(runId);
    if (!context) {
      context = this.#loadRun(runId);
      this.#runs.set(runId, context);
      context.catch(() => this.#runs.delete(runId));
    }
    return context;
  }

  async #loadRun(runId: string): Promise<RunContext> {
    const text = await this.#o.redis.get(runKeys(this.#o.prefix, runId).spec);
    if (text === null) throw new UnrecoverableError(`run ${runId} is not in Redis (finished, or its coordinator removed it)`);
    const shipped = JSON.parse(text) as ShippedRun;
    let spec: WorkerSpec;
    try {
      spec = resolveRun(shipped, this.#o.env);
    } catch (error) {
      // Another worker may have what this one lacks (an environment variable, a TLS file): BullMQ retries the chunk.
      throw new Error(error instanceof ValidationError ? describeIssues(error) : getErrorMessage(error), {cause: error});
    }
    const method = methodFromJson(shipped.method);
    this.#o.logger?.info({event: 'run:joined', job: shipped.job, run: runId, target: shipped.target, coordinator: shipped.coordinator}, `taking chunks of run ${runId} of ${shipped.job}`);
    return {shipped, spec, method, pool: channelPoolFor(spec), active: 0, idleSince: Date.now()};
  }

  #closeIdleRuns(): void {
    for (const [runId, promise] of this.#runs) {
      promise.then((context) => {
        if (context.active === 0 && Date.now() - context.idleSince > IDLE_RUN_MS && this.#runs.get(runId) === promise) {
          this.#runs.delete(runId);
          context.pool.close();
        }
      }, () => undefined);
    }
  }
}
