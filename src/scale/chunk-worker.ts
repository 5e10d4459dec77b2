import {hostname} from 'node:os';
import {randomBytes} from 'node:crypto';
import {UnrecoverableError, WaitingError, type Job} from 'bullmq';
import type {Redis} from 'ioredis';
import {getErrorMessage, ValidationError} from '../errors.js';
import type {Logger} from '../util/log.js';
import type {ChannelPool} from '../rpc/channel.js';
import type {MethodHandle} from '../schema/method-handle.js';
import {channelPoolFor} from '../engine/executor-inline.js';
import type {ChunkData, ChunkReturn} from './chunk.js';
import {LockWatch, WatchedWorker} from './chunk-lock.js';
import {ChunkRun} from './chunk-runner.js';
import {methodFromJson} from './method-json.js';
import {chunkJobKey, CHUNKS_QUEUE, isOutOfMemory, outOfMemoryMessage, runKeys, watchBullmq} from './redis.js';
import {describeIssues, resolveRun, type ShippedRun, type WorkerSpec} from './run-spec.js';
import {DEFAULT_WORKER_CHUNKS} from './target.js';
import {WorkerHealth} from './worker-health.js';

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
  | {
      readonly type: 'done';
      readonly job: string;
      readonly run: string;
      readonly chunk: number;
      readonly ok: number;
      readonly failed: number;
      readonly unsent: number;
      readonly attempts: number;
    }
  | {readonly type: 'failed'; readonly run: string; readonly chunk: number; readonly error: string}
  | {readonly type: 'handed-back'; readonly run: string; readonly chunk: number}
  /** The chunk's lock was lost (Redis cut off): its work is thrown away, another worker runs it. */
  | {readonly type: 'lost'; readonly run: string; readonly chunk: number; readonly attempts: number};

export const DEFAULT_LOCK_DURATION_MS = 30_000;
/** A chunk that stalled this often (its workers died or froze) fails instead of going round again. */
const MAX_STALLS = 5;
/** How often a running chunk reports progress and looks for a stop or cancel of its run. */
const PROGRESS_MS = 500;
/** Results of a chunk wait this long for their coordinator (one that died and is resumed later); past it they are sent again. */
export const RESULTS_TTL_MS = 24 * 3600_000;
/** A run's channels are closed after this long without a chunk of it. */
const IDLE_RUN_MS = 30_000;

/** A chunk running here. */
interface ActiveChunk {
  readonly run: ChunkRun;
  /** Why it goes back to the queue, whole, once its calls end (SIGTERM, its backend unreachable). */
  handBack: string | undefined;
  /** When its backend was found unreachable (`Date.now()`). */
  downAt: number | undefined;
  /** Why its lock may be lost: its calls stop, and nothing of it is stored. */
  lost: string | undefined;
}

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
  readonly #worker: WatchedWorker<ChunkData, ChunkReturn>;
  readonly #locks: LockWatch;
  readonly #health: WorkerHealth;
  readonly #runs = new Map<string, Promise<RunContext>>();
  readonly #active = new Map<string, ActiveChunk>();
  /** Chunks returned by the processor, their completion not stored yet: logged done only once it is. */
  readonly #finishing = new Map<string, {done(): void; refused(error: unknown): void}>();
  readonly #sweep: NodeJS.Timeout;
  readonly #name = `${hostname()} pid ${process.pid}`;
  #closing: Promise<void> | undefined;

  constructor(options: ChunkWorkerOptions) {
    this.#o = options;
    const lockDuration = options.lockDurationMs ?? DEFAULT_LOCK_DURATION_MS;
    this.#locks = new LockWatch(lockDuration);
    this.#worker = new WatchedWorker<ChunkData, ChunkReturn>(
      CHUNKS_QUEUE,
      (job, token) => this.#process(job, token),
      {
        connection: options.redis,
        prefix: options.prefix,
        concurrency: options.chunks ?? DEFAULT_WORKER_CHUNKS,
        lockDuration,
        stalledInterval: lockDuration,
        maxStalledCount: MAX_STALLS,
        autorun: true,
      },
      this.#locks,
      (id, refused) => this.#completed(id, refused),
    );
    this.#health = new WorkerHealth(this.#worker, options.logger);
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
      this.#health.close();
      const closed = this.#worker.close();
      let timer: NodeJS.Timeout | undefined;
      const expired = await Promise.race([
        closed.then(() => false),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), graceMs))),
      ]);
      clearTimeout(timer);
      if (expired) this.handBack();
      await closed;
      clearInterval(this.#sweep);
      for (const context of this.#runs.values())
        context.then(
          (c) => c.pool.close(),
          () => undefined,
        );
      this.#runs.clear();
    })());
  }

  /** Stops the chunks running now and hands them back to the queue (a second SIGTERM). */
  handBack(): void {
    for (const entry of this.#active.values()) {
      entry.handBack ??= 'the worker is stopping';
      entry.run.cancel();
    }
  }

  /**
   * A chunk's backend is unreachable from here: this run's chunks go back to the queue (not failed,
   * no attempt burned) for the other workers, and this worker takes none for a while. Unless no
   * worker reached it for the job's `maxOutage` (counted from the first that could not,
   * `ChunkData.downSince`): then the chunk stays, and its calls give up as a local run's do.
   */
  #backendDown(data: ChunkData, spec: WorkerSpec, entry: ActiveChunk, reason: string): void {
    if (entry.handBack || entry.lost) return;
    if (data.downSince !== undefined && spec.maxOutageMs > 0 && Date.now() - data.downSince >= spec.maxOutageMs) return;
    entry.downAt = Date.now();
    let chunks = 0;
    for (const other of this.#active.values()) {
      if (other.run.runId !== data.run || other.handBack || other.lost) continue;
      other.downAt ??= entry.downAt;
      other.handBack = `cannot reach ${spec.target}: ${reason}`;
      // Not from within the outage gate's own callback.
      setImmediate(() => other.run.cancel());
      chunks++;
    }
    this.#health.down(data.run, spec.target, reason, chunks);
  }

  async #process(job: Job<ChunkData, ChunkReturn>, token: string | undefined): Promise<ChunkReturn> {
    const data = job.data;
    if (typeof data?.run !== 'string')
      throw new UnrecoverableError(
        `chunk ${job.id} expired in Redis (its run's coordinator died and was not resumed within GRPC_BATCH_KEYS_TTL): nothing to run`,
      );
    const context = await this.#context(data.run);
    context.active++;
    const id = job.id!;
    // Handed back before by workers that could not reach the backend: the outage goes on counting from the first.
    const spec =
      data.downSince !== undefined && context.spec.maxOutageMs > 0
        ? {...context.spec, maxOutageMs: Math.max(1, context.spec.maxOutageMs - (Date.now() - data.downSince))}
        : context.spec;
    const run: ChunkRun = new ChunkRun(data, spec, context.method, context.pool, {
      canSend: () => this.#locks.check(id),
      onOutage: (event) => {
        if (event.type === 'down') this.#backendDown(data, context.spec, entry, event.reason);
      },
    });
    const entry: ActiveChunk = {run, handBack: undefined, downAt: undefined, lost: undefined};
    this.#active.set(id, entry);
    const log = this.#o.logger?.child({job: context.shipped.job, run: data.run, chunk: data.chunk});
    this.#o.onChunk?.({type: 'started', job: context.shipped.job, run: data.run, chunk: data.chunk});
    const keys = runKeys(this.#o.prefix, data.run);
    let reporting = false;
    const report = setInterval(() => {
      if (reporting || !this.#locks.isHeld(id)) return; // Redis slow or paused: one report at a time; none for a chunk no longer ours
      reporting = true;
      Promise.all([job.updateProgress({...run.progress()}), this.#o.redis.get(keys.control)])
        .then(
          ([, control]) => {
            if (control === 'cancel') run.cancel();
            else if (control === 'stop') run.stop();
          },
          () => undefined,
        )
        .finally(() => (reporting = false));
    }, PROGRESS_MS);
    const started = performance.now();
    // A chunk whose lock may be lost makes no call more: another worker may run it already.
    this.#locks.hold(id, Math.min(job.processedOn ?? Date.now(), Date.now()), (reason) => {
      entry.lost = reason;
      clearInterval(report);
      run.stop();
      // Logged now, while Redis may still be out of reach (what is left is done once it answers).
      const attempts = run.progress().attempts;
      log?.warn(
        {event: 'chunk:lost', records: data.lines.length, attempts, reason},
        `chunk ${data.chunk} of run ${data.run} is no longer surely this worker's (${reason}): it makes no call more (${attempts} attempts so far), its work is thrown away, another worker runs it`,
      );
    });
    try {
      // A run stopped or cancelled before this chunk began: none of it is sent.
      if (await this.#o.redis.get(keys.control)) run.stop();
      const outcome = await run.run();
      this.#locks.check(id); // lost meanwhile: `entry.lost` says why
      if (entry.lost) await this.#thrownAway(job, token, outcome.attempts, context.shipped.keysTtlMs);
      if (entry.handBack) {
        // Whole, to another worker: what this one sent of it is sent again (at least once).
        // Since when no worker reached the backend for it: kept, set, or cleared (this worker reached it).
        const downSince =
          entry.downAt !== undefined
            ? run.reachedBackend
              ? entry.downAt
              : (data.downSince ?? entry.downAt)
            : run.reachedBackend
              ? undefined
              : data.downSince;
        if (downSince !== data.downSince) await job.updateData({...data, downSince});
        await this.#addThrownAway(data.run, outcome.attempts, context.shipped.keysTtlMs);
        await job.moveToWait(token);
        this.#o.onChunk?.({type: 'handed-back', run: data.run, chunk: data.chunk});
        // One line per fault: a backend this worker cannot reach is `worker:backend-down`, its chunks' hand-backs are details.
        log?.[entry.downAt === undefined ? 'warn' : 'debug'](
          {event: 'chunk:handed-back', records: data.lines.length, reason: entry.handBack},
          `chunk ${data.chunk} of run ${data.run} handed back to the queue: ${entry.handBack}`,
        );
        throw new WaitingError();
      }
      if (run.reachedBackend) this.#health.up();
      const results = keys.results(job.id!, `${job.attemptsStarted}-${randomBytes(3).toString('hex')}`);
      try {
        await this.#o.redis.set(results, outcome.lines.join('\n'), 'PX', context.shipped.keysTtlMs ?? RESULTS_TTL_MS);
      } catch (error) {
        if (!isOutOfMemory(error)) throw error;
        // Redis is full: this run's other chunks here would fail the same way; none is run again (the coordinator stops the run).
        for (const other of this.#active.values()) if (other !== entry && other.run.runId === data.run) other.run.stop();
        throw new UnrecoverableError(outOfMemoryMessage(data.run, undefined));
      }
      // The lock may have run out while the results were written: they are thrown away.
      if (!this.#locks.check(id)) await this.#thrownAway(job, token, outcome.attempts, context.shipped.keysTtlMs, results);
      const {lines: _lines, ...rest} = outcome;
      const value: ChunkReturn = {...rest, results, records: data.lines.length, worker: this.#name};
      const ms = Math.round(performance.now() - started);
      this.#finishing.set(id, {
        done: () => {
          this.#o.onChunk?.({
            type: 'done',
            job: context.shipped.job,
            run: data.run,
            chunk: data.chunk,
            ok: outcome.ok,
            failed: outcome.failed,
            unsent: outcome.unsent.length,
            attempts: outcome.attempts,
          });
          log?.info(
            {
              event: 'chunk:done',
              records: data.lines.length,
              ok: outcome.ok,
              failed: outcome.failed,
              unsent: outcome.unsent.length,
              attempts: outcome.attempts,
              ms,
            },
            `chunk ${data.chunk} of run ${data.run}: ${outcome.ok} ok, ${outcome.failed} failed${outcome.unsent.length ? `, ${outcome.unsent.length} unsent` : ''}`,
          );
        },
        refused: (error) => {
          this.#o.onChunk?.({type: 'lost', run: data.run, chunk: data.chunk, attempts: outcome.attempts});
          log?.warn(
            {event: 'chunk:lost', records: data.lines.length, attempts: outcome.attempts, reason: getErrorMessage(error)},
            `chunk ${data.chunk} of run ${data.run}: Redis refused its completion (${getErrorMessage(error)}): its work is thrown away, another worker runs it`,
          );
          void this.#addThrownAway(data.run, outcome.attempts, context.shipped.keysTtlMs, results);
        },
      });
      return value;
    } catch (error) {
      if (!(error instanceof WaitingError)) {
        this.#o.onChunk?.({type: 'failed', run: data.run, chunk: data.chunk, error: getErrorMessage(error)});
        log?.error(
          {event: 'chunk:failed', error: getErrorMessage(error)},
          `chunk ${data.chunk} of run ${data.run} failed: ${getErrorMessage(error)}`,
        );
      }
      throw error;
    } finally {
      clearInterval(report);
      this.#locks.release(id);
      this.#active.delete(id);
      context.active--;
      context.idleSince = Date.now();
    }
  }

  /**
   * A chunk whose lock may be lost (`chunk:lost` logged when it was found): nothing of it is stored or logged as done. Its attempts are
   * added to the run's (`runKeys.lost`: they reached the backend; the coordinator counts them),
   * and it goes back to the queue if it is still this worker's; else the worker that took it over
   * runs it. Sent once Redis answers again; always throws (BullMQ then leaves the job alone).
   */
  async #thrownAway(
    job: Job<ChunkData, ChunkReturn>,
    token: string | undefined,
    attempts: number,
    ttlMs: number | undefined,
    results?: string,
  ): Promise<never> {
    const data = job.data;
    this.#locks.release(job.id!);
    this.#o.onChunk?.({type: 'lost', run: data.run, chunk: data.chunk, attempts});
    await this.#addThrownAway(data.run, attempts, ttlMs, results);
    await job.moveToWait(token).catch(() => undefined);
    throw new WaitingError();
  }

  /** BullMQ stored a chunk's completion, or Redis refused it (the lock was lost meanwhile). */
  #completed(id: string, refused: unknown): void {
    const finishing = this.#finishing.get(id);
    this.#finishing.delete(id);
    if (refused === undefined) finishing?.done();
    else finishing?.refused(refused);
  }

  /** Attempts made for a chunk whose work is thrown away (lost, handed back): added to the run's by its coordinator. */
  async #addThrownAway(runId: string, attempts: number, ttlMs: number | undefined, results?: string): Promise<void> {
    if (attempts <= 0 && !results) return;
    const key = runKeys(this.#o.prefix, runId).lost;
    const multi = this.#o.redis.multi();
    if (attempts > 0) multi.incrby(key, attempts).pexpire(key, ttlMs ?? RESULTS_TTL_MS);
    if (results) multi.del(results);
    await multi.exec().catch(() => undefined);
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
    this.#o.logger?.info(
      {event: 'run:joined', job: shipped.job, run: runId, target: shipped.target, coordinator: shipped.coordinator},
      `taking chunks of run ${runId} of ${shipped.job}`,
    );
    return {shipped, spec, method, pool: channelPoolFor(spec), active: 0, idleSince: Date.now()};
  }

  #closeIdleRuns(): void {
    for (const [runId, promise] of this.#runs) {
      promise.then(
        (context) => {
          if (context.active === 0 && Date.now() - context.idleSince > IDLE_RUN_MS && this.#runs.get(runId) === promise) {
            this.#runs.delete(runId);
            context.pool.close();
          }
        },
        () => undefined,
      );
    }
  }
}
