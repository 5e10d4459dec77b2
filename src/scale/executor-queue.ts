import {randomBytes} from 'node:crypto';
import type {Queue, QueueEvents} from 'bullmq';
import type {Redis} from 'ioredis';
import {FencedError, getErrorMessage, InternalError, QueueError} from '../errors.js';
import type {OutageStatus} from '../rpc/outage-gate.js';
import {Status} from '../codec/status.js';
import type {Executor, ExecutorEvents, RecordCall} from '../engine/executor.js';
import type {Share} from '../engine/executor-inline.js';
import type {PipelineStatus} from '../engine/pipeline.js';
import {RunStats} from '../engine/stats.js';
import {Waiter} from '../util/waiter.js';
import type {AdoptedResults} from './adopt.js';
import {chunkId, decodeResults, metadataToData, type ChunkData, type ChunkProgress, type ChunkReturn} from './chunk.js';
import {FENCED_WRITE, type RunLease} from './lease.js';
import {chunkJobKey, isOutOfMemory, outOfMemoryMessage, runKeys} from './redis.js';

/** A chunk that is not full yet is sent after this long without a new record (a slow input). */
const LINGER_MS = 200;
/** How often the chunks in the queue are looked at, for an event that was missed (a reconnect). */
const SWEEP_MS = 2000;
/** Attempts at a chunk whose processing throws (a worker that cannot resolve the run's secrets...). */
const CHUNK_ATTEMPTS = 3;
/** How long the end of a run waits for Redis to say how many attempts workers threw away (`runKeys.lost`). */
const LOST_READ_MS = 2000;
/** Redis is taken as unreachable (the run waits, as for its backend) once a ping goes this long without an answer. */
const REDIS_SILENT_MS = 3000;

export interface QueueExecutorOptions {
  readonly redis: Redis;
  readonly queue: Queue;
  readonly events: QueueEvents;
  readonly prefix: string;
  readonly runId: string;
  /** The run's lease, held by this coordinator: checked in Redis before each merge and each write of the run's keys. */
  readonly lease?: RunLease;
  /** How long Redis may stay silent before the run stops (interrupted, exit 4, resumable); 0 = forever. */
  readonly maxOutageMs?: number;
  /** The job's limits: the chunks in flight share them, their shares never add up to more. */
  readonly limits: Share;
  /** Chunks of the run in the queue at once, at most. Minimum: 1; at most `limits.concurrency`. */
  readonly slots: number;
  /** Lines of the input, when known (a regular file): the run's size, which the shares follow. */
  readonly inputLines?: Promise<number | undefined>;
  /** Records per chunk. Minimum: 1. */
  readonly chunkSize: number;
  /** The TTL of the keys this run writes (`keysTtlMs`): set on each as it is written, refreshed with the lease. */
  readonly keysTtlMs: number;
  /** The job's metadata as expanded here: its fixed entries are left out of the records' own (see `metadataToData`). */
  readonly jobMetadata: Readonly<Record<string, string>>;
  /** On a resume: results of chunks the workers finished while no coordinator ran. */
  readonly adopted?: AdoptedResults;
  /** Where Redis is, for the reason the run waits (`redis://host:port`, no password). */
  readonly redisLabel?: string;
}

interface Chunk {
  readonly id: string;
  readonly number: number;
  readonly slot: number;
  /** Its share of the run's limits. */
  readonly share: Share;
  readonly calls: Map<number, RecordCall>;
  progress: ChunkProgress | undefined;
  merging: boolean;
  /** Its `queue.add` landed: before that, Redis not knowing the chunk says nothing. */
  added: boolean;
  /** Redis said once that it does not know the chunk: lost if it says so again at a later look. */
  missing: boolean;
}

const NO_OUTAGE: OutageStatus = {paused: false, pausedForMs: 0, reason: undefined, pauses: 0, pausedMs: 0};

/**
 * Runs records on remote workers (`grpc-batch worker`) through a BullMQ queue. Records are packed
 * into chunks; at most one chunk per slot is in the queue at a time, each with its slot's share of
 * `concurrency` and `rps`, so the totals hold whatever the number of workers. A finished chunk is
 * merged once: its results are written (by the run's sink), flushed, and only then deleted from
 * Redis, so after a crash a record's result is either on disk or still in Redis.
 */
export class QueueExecutor implements Executor {
  readonly #o: QueueExecutorOptions;
  readonly #events: ExecutorEvents;
  readonly #flush: () => void;
  readonly #keys;
  readonly #session = randomBytes(2).toString('hex');
  readonly #chunks = new Map<string, Chunk>();
  readonly #free: number[];
  readonly #merged = new RunStats();
  readonly #sweep: NodeJS.Timeout;
  #buffer: RecordCall[] = [];
  #linger: NodeJS.Timeout | undefined;
  #count = 0;
  #outstanding = 0;
  #highestLine = 0;
  #stopping = false;
  /** Stopped for good without a word to Redis: the lease was lost, Redis is full, or silent past maxOutage. */
  #abandoned = false;
  #redisGone = false;
  #onRedisGone: () => void = () => undefined;
  #sweeping = false;
  /** The input is read to its end: the chunk sent now is the last (bar re-sends), it may take what is left of the limits. */
  #ended = false;
  #inputLines: number | undefined;
  #paused: {since: number; reason: string} | undefined;
  /** Redis unreachable since (a ping unanswered for REDIS_SILENT_MS): the run waits for it as for its backend. */
  #redisDown: number | undefined;
  #pingSentAt: number | undefined;
  #lastAnswer = Date.now();
  #pauses = 0;
  #pausedMs = 0;
  readonly #room = new Waiter(() => this.hasRoom || this.#stopping);
  readonly #idle = new Waiter(() => this.#outstanding === 0);
  /** Merges and removals in progress: `close` waits for them, so the run leaves nothing of its own in Redis. */
  readonly #settling = new Set<Promise<void>>();
  readonly #onCompleted = ({jobId}: {jobId: string}) => void this.#settleChunk(jobId, 'completed');
  readonly #onFailed = ({jobId}: {jobId: string}) => void this.#check(jobId);
  readonly #onProgress = ({jobId, data}: {jobId: string; data: unknown}) => this.#guard(() => this.#progress(jobId, data as ChunkProgress));

  constructor(options: QueueExecutorOptions, events: ExecutorEvents, flush: () => void) {
    this.#o = options;
    this.#events = events;
    this.#flush = flush;
    this.#keys = runKeys(options.prefix, options.runId);
    this.redisGoneAt = new Promise<void>((resolve) => (this.#onRedisGone = resolve));
    this.#free = Array.from({length: options.slots}, (_, i) => i).reverse();
    options.inputLines?.then(
      (lines) => (this.#inputLines = lines),
      () => undefined,
    );
    options.events.on('completed', this.#onCompleted);
    options.events.on('failed', this.#onFailed);
    options.events.on('progress', this.#onProgress);
    if (options.adopted) this.#merged.add(options.adopted.stats);
    this.#sweep = setInterval(() => {
      this.#guard(() => this.#watchRedis());
      this.#probeMemory();
      void this.#sweepChunks();
    }, SWEEP_MS);
    this.#sweep.unref();
  }

  /**
   * Room while a slot is free: the records read go to the buffer, which becomes a chunk in that slot.
   * The run may hand in one record more after the last slot was taken (it asked, then waited for
   * its input while the buffer's linger sent it): that record waits in the buffer for a slot.
   */
  get hasRoom(): boolean {
    return !this.#stopping && this.#free.length > 0 && this.#buffer.length < this.#o.chunkSize;
  }

  room(): Promise<void> {
    return this.#room.wait();
  }

  submit(call: RecordCall): void {
    this.#outstanding++;
    if (this.#stopping) return this.#unsent(call); // handed in as the run stopped: not sent
    this.#highestLine = Math.max(this.#highestLine, call.line);
    const adopted = this.#o.adopted?.results.get(call.line);
    if (adopted) {
      // Finished by a worker while no coordinator ran: written now, not sent again.
      this.#o.adopted!.results.delete(call.line);
      queueMicrotask(
        () =>
          void this.#fence()
            .then(() => this.#report(call, adopted.code, adopted.attempts, adopted.text))
            .catch((error: unknown) => this.#failed(error)),
      );
      return;
    }
    this.#buffer.push(call);
    if (this.#buffer.length >= this.#o.chunkSize) this.#dispatch();
    else if (!this.#linger) {
      this.#linger = setTimeout(() => this.#guard(() => this.#dispatch()), LINGER_MS);
      this.#linger.unref();
    }
  }

  idle(): Promise<void> {
    this.#ended = true;
    if (!this.#stopping) this.#dispatch();
    return this.#idle.wait();
  }

  stop(): void {
    this.#halt('stop');
  }

  cancel(): void {
    this.#halt('cancel');
  }

  /**
   * The run's lease was lost (another coordinator may drive the run now): stops at once and touches
   * Redis no more (no stop signal, no withdrawal: the chunks are the other's to take over). Chunks
   * being merged finish; the others' records are left unsent (the run is resumable).
   */
  abandon(reason: string | Error): void {
    if (this.#abandoned) return;
    this.#drop(false);
    this.#events.onFatal(typeof reason === 'string' ? new QueueError(reason) : reason);
  }

  /** Whether Redis went silent for longer than maxOutage: nothing of the run's shutdown waits for it. */
  get redisGone(): boolean {
    return this.#redisGone;
  }

  /** Resolves when Redis is found silent for longer than maxOutage (never, while it answers). */
  readonly redisGoneAt: Promise<void>;

  /**
   * Stops here and now, touching Redis no more: the records buffered and in chunks are left unsent
   * (resumable). Chunks being merged finish, unless Redis is silent (`all`): their records not
   * written yet are left unsent too, and a merge that resumes later writes nothing.
   */
  #drop(all: boolean): void {
    this.#abandoned = true;
    this.#stopping = true;
    clearTimeout(this.#linger);
    const unsent = this.#buffer;
    this.#buffer = [];
    for (const call of unsent) this.#unsent(call);
    for (const chunk of [...this.#chunks.values()]) {
      if (chunk.merging && !all) continue;
      this.#chunks.delete(chunk.id);
      const calls = [...chunk.calls.values()];
      chunk.calls.clear();
      for (const call of calls) this.#unsent(call);
    }
    this.#room.check();
  }

  /** Checks the lease's generation in Redis before a write; throws `FencedError` when another coordinator drives the run. */
  async #fence(): Promise<void> {
    if (this.#abandoned) throw new FencedError(`run ${this.#o.runId} stopped: nothing more is written`);
    await this.#o.lease?.check();
  }

  /**
   * A write of the run's keys (`FENCED_WRITE`), made only while the lease and its generation are
   * this coordinator's; false (and the run abandoned) when they are not. Without a lease, unfenced.
   */
  async #fencedWrite(op: 'add' | 'forget' | 'probe', keys: readonly string[], member = ''): Promise<boolean> {
    const lease = this.#o.lease;
    if (!lease) {
      if (op === 'add') await this.#o.redis.multi().sadd(keys[0]!, member).pexpire(keys[0]!, this.#o.keysTtlMs).exec();
      else if (op === 'forget')
        await this.#o.redis
          .multi()
          .srem(keys[0]!, member)
          .del(...keys.slice(1))
          .exec();
      else await this.#o.redis.set(keys[0]!, '1', 'PX', this.#o.keysTtlMs);
      return true;
    }
    const fence = lease.fenceArgs();
    const done = await this.#o.redis.eval(
      FENCED_WRITE,
      2 + keys.length,
      ...fence.keys,
      ...keys,
      ...fence.args,
      this.#o.keysTtlMs,
      member,
      op,
    );
    if (done === 1) return true;
    this.abandon(lease.fenced((await this.#o.redis.get(fence.keys[0]).catch(() => null)) ?? undefined));
    return false;
  }

  /** What stopped a merge or a write: a lost lease stops the run as `abandon`; else the run's fatal error. */
  #failed(error: unknown): void {
    if (error instanceof FencedError) this.abandon(error);
    else this.#events.onFatal(error);
  }

  async close(): Promise<void> {
    while (this.#settling.size > 0 && !this.#redisGone) await Promise.allSettled([...this.#settling]);
    clearInterval(this.#sweep);
    clearTimeout(this.#linger);
    this.#o.events.off('completed', this.#onCompleted);
    this.#o.events.off('failed', this.#onFailed);
    this.#o.events.off('progress', this.#onProgress);
    // Attempts of chunks whose worker lost the lock (their work thrown away, run again elsewhere): they reached the backend too.
    // Bounded: a coordinator that stops because Redis is gone does not wait for it here.
    let timer: NodeJS.Timeout | undefined;
    const lost = await Promise.race([
      this.#o.redis.get(this.#keys.lost).catch(() => null),
      new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), LOST_READ_MS))),
    ]).finally(() => clearTimeout(timer));
    if (lost !== null && Number.isSafeInteger(Number(lost))) this.#merged.attempts += Number(lost);
    if (!this.#abandoned) await this.#o.adopted?.release(this.#stopping ? this.#highestLine : Infinity).catch(() => undefined);
  }

  /** Chunks of this run still in the queue (none once every record was reported). */
  get chunksInQueue(): number {
    return this.#chunks.size;
  }

  status(): PipelineStatus {
    let calls = 0;
    let limit = 0;
    for (const chunk of this.#chunks.values()) {
      calls += chunk.progress?.calls ?? 0;
      limit += chunk.progress?.limit ?? chunk.share.concurrency;
    }
    const paused = this.#paused;
    const pausedForMs = paused ? Date.now() - paused.since : 0;
    const outage: OutageStatus = paused
      ? {paused: true, pausedForMs, reason: paused.reason, pauses: this.#pauses, pausedMs: this.#pausedMs + pausedForMs}
      : {...NO_OUTAGE, pauses: this.#pauses, pausedMs: this.#pausedMs};
    return {records: this.#outstanding, calls, limit, outage};
  }

  get attempts(): number {
    let inFlight = 0;
    for (const chunk of this.#chunks.values()) inFlight += chunk.progress?.attempts ?? 0;
    return this.#merged.attempts + inFlight;
  }

  get throttled(): number {
    return this.#merged.throttled;
  }

  limitRange(): undefined {
    return undefined;
  }

  collectLatencies(into: RunStats): void {
    into.attempts += this.#merged.attempts;
    into.throttled += this.#merged.throttled;
    into.addLatencies(this.#merged.shareLatencies());
  }

  /** Runs a timer's or an event's work: what it throws stops the run (exit 3, with its summary), never the process. */
  #guard(work: () => void): void {
    try {
      work();
    } catch (error) {
      this.#events.onFatal(error);
    }
  }

  #halt(how: 'stop' | 'cancel'): void {
    if (this.#abandoned) return; // the run's keys are no longer this coordinator's to write
    const first = !this.#stopping;
    this.#stopping = true;
    clearTimeout(this.#linger);
    const unsent = this.#buffer;
    this.#buffer = [];
    for (const call of unsent) this.#unsent(call);
    this.#room.check();
    // The workers running this run's chunks see it within a progress interval.
    this.#o.redis.set(this.#keys.control, how, 'PX', this.#o.keysTtlMs).catch(() => undefined);
    if (first) {
      for (const chunk of this.#chunks.values()) {
        const withdrawing: Promise<void> = this.#withdraw(chunk)
          .catch(() => undefined)
          .finally(() => this.#settling.delete(withdrawing));
        this.#settling.add(withdrawing);
      }
    }
  }

  /**
   * A chunk no worker took yet leaves the queue at once. (Should a worker take and finish it between
   * the look and the removal, its results are lost and its records left unsent: a resume sends them.)
   */
  async #withdraw(chunk: Chunk): Promise<void> {
    const state = await this.#o.queue.getJobState(chunk.id);
    if (state !== 'waiting' && state !== 'delayed' && state !== 'prioritized') return;
    if ((await this.#o.queue.remove(chunk.id)) === 1) await this.#dropChunk(chunk);
  }

  /** Sends the buffer as a chunk if a slot is free; else it waits for one (`#forget` sends it). */
  #dispatch(): void {
    clearTimeout(this.#linger);
    this.#linger = undefined;
    if (this.#buffer.length === 0 || this.#stopping) return;
    const share = this.#shareFor(this.#buffer.length);
    const slot = share ? this.#free.pop() : undefined;
    if (slot === undefined || !share) return;
    const calls = this.#buffer;
    this.#buffer = [];
    this.#enqueue(calls, slot, share);
  }

  /**
   * A new chunk's share of the limits: what the chunks in flight do not hold, split over the chunks
   * that may run beside it: the free slots, fewer when the run's size says fewer chunks are left
   * (a run smaller than a chunk gets the whole concurrency), one once the input is read to its end.
   * Never more calls than the chunk has records; undefined when nothing is left (it waits).
   */
  #shareFor(records: number): Share | undefined {
    const {concurrency, rps} = this.#o.limits;
    let held = 0;
    for (const chunk of this.#chunks.values()) held += chunk.share.concurrency;
    const left = concurrency - held;
    if (left < 1 || this.#free.length === 0) return undefined;
    let beside = this.#free.length;
    if (this.#ended) beside = 1;
    else if (this.#inputLines !== undefined)
      beside = Math.min(beside, 1 + Math.ceil(Math.max(0, this.#inputLines - this.#highestLine) / this.#o.chunkSize));
    const share = Math.min(records, Math.ceil(left / beside));
    return {concurrency: share, rps: rps > 0 ? (rps * share) / concurrency : 0};
  }

  /** Puts records into the queue as one chunk, in `slot`, with `share` of the limits. */
  #enqueue(calls: readonly RecordCall[], slot: number, share: Share): void {
    const number = ++this.#count;
    const id = chunkId(this.#o.runId, this.#session, number);
    const chunk: Chunk = {
      id,
      number,
      slot,
      share,
      calls: new Map(calls.map((c) => [c.line, c])),
      progress: undefined,
      merging: false,
      added: false,
      missing: false,
    };
    this.#chunks.set(id, chunk);
    const data: ChunkData = {
      run: this.#o.runId,
      chunk: number,
      concurrency: share.concurrency,
      rps: share.rps,
      lines: calls.map((c) => c.line),
      requests: calls.map((c) => c.request.toString('base64')),
      ...(calls.some((c) => c.metadata)
        ? {metadata: calls.map((c) => (c.metadata ? metadataToData(c.metadata, this.#o.jobMetadata) : null))}
        : {}),
      ...(calls.some((c) => c.deadlineMs !== undefined) ? {deadlines: calls.map((c) => c.deadlineMs ?? null)} : {}),
    };
    (async () => {
      // Queued only by the coordinator that drives the run (one that lost it would send its records twice).
      if (!(await this.#fencedWrite('add', [this.#keys.chunks], id))) return;
      await this.#o.queue.add('chunk', data, {
        jobId: id,
        attempts: CHUNK_ATTEMPTS,
        backoff: {type: 'exponential', delay: 1000},
        removeOnComplete: false,
        removeOnFail: false,
      });
      chunk.added = true;
      // The job holds the records' requests: it expires with the run's other keys should this coordinator die.
      await this.#o.redis.pexpire(chunkJobKey(this.#o.prefix, id), this.#o.keysTtlMs);
    })().catch((error: unknown) =>
      isOutOfMemory(error)
        ? this.#outOfMemory(error)
        : this.#abandoned
          ? undefined
          : this.#events.onFatal(
              new QueueError(`cannot queue chunk ${number} of run ${this.#o.runId}: ${getErrorMessage(error)}`, {cause: error}),
            ),
    );
  }

  /**
   * Looks at a chunk's state in Redis. A chunk is lost only when Redis says it does not know it
   * after its `queue.add` landed, at two looks in a row: a look sent before the add (both queued on
   * a connection during a Redis cut) or racing a merge says nothing.
   */
  async #check(id: string): Promise<void> {
    const chunk = this.#chunks.get(id);
    if (!chunk || chunk.merging || !chunk.added) return;
    const state = await this.#o.queue.getJobState(id);
    if (chunk.merging || !this.#chunks.has(id)) return;
    if (state === 'unknown') {
      if (!chunk.missing) {
        chunk.missing = true;
        return;
      }
    } else chunk.missing = false;
    if (state === 'completed' || state === 'failed' || state === 'unknown') await this.#settleChunk(id, state);
  }

  /**
   * Pings Redis each sweep: unanswered for REDIS_SILENT_MS (Redis paused, a partition, a failover),
   * the run waits for it (`down` as for its backend, in progress and the summary's pauses), and goes
   * on when it answers (`up`). Commands wait through the cut meanwhile, nothing is lost by it.
   */
  #watchRedis(): void {
    const now = Date.now();
    if (this.#pingSentAt === undefined) {
      const sent = (this.#pingSentAt = now);
      this.#o.redis
        .ping()
        .then(
          () => {
            this.#lastAnswer = Date.now();
            if (this.#redisDown !== undefined) {
              this.#redisDown = undefined;
              this.#updatePaused();
            }
          },
          () => undefined,
        )
        .finally(() => {
          if (this.#pingSentAt === sent) this.#pingSentAt = undefined;
        });
    }
    if (this.#redisDown === undefined && now - this.#lastAnswer > REDIS_SILENT_MS + SWEEP_MS / 2) {
      this.#redisDown = this.#lastAnswer;
      this.#updatePaused();
    }
    const maxOutageMs = this.#o.maxOutageMs ?? 0;
    if (this.#redisDown !== undefined && maxOutageMs > 0 && now - this.#redisDown > maxOutageMs && !this.#abandoned)
      this.#giveUpOnRedis(now - this.#redisDown);
  }

  /**
   * Redis silent past maxOutage: the run is interrupted (exit 4, resumable), as for a backend that
   * stays down; nothing waits for Redis any more (no merge, no stop signal, no withdrawal). The
   * chunks on workers finish and wait in Redis for a resume, which takes them over.
   */
  #giveUpOnRedis(silentMs: number): void {
    this.#redisGone = true;
    this.#onRedisGone();
    const reason = `Redis${this.#o.redisLabel ? ` at ${this.#o.redisLabel}` : ''} did not answer for ${Math.round(silentMs / 1000)}s (maxOutage ${Math.round((this.#o.maxOutageMs ?? 0) / 1000)}s): the run stops here; resume it once Redis is back`;
    this.#drop(true);
    this.#events.onOutage({type: 'gave-up', pausedMs: silentMs, reason});
  }

  /**
   * A write each sweep: a Redis out of memory (noeviction) refuses the workers' results too, and
   * BullMQ would run their chunks again whole; the run stops at once instead (exit 3, resumable).
   */
  #probeMemory(): void {
    if (this.#stopping || this.#redisDown !== undefined) return;
    // Fenced too: a coordinator that lost the run learns it here within a sweep, not only at its next renewal.
    this.#fencedWrite('probe', [this.#keys.probe]).catch((error: unknown) => {
      if (isOutOfMemory(error)) this.#outOfMemory(error);
    });
  }

  /** Stops as `abandon` does: the chunks on workers cannot store their results, their records are left unsent (resumable). */
  #outOfMemory(_error: unknown): void {
    if (this.#stopping) return;
    this.abandon(outOfMemoryMessage(this.#o.runId, this.#o.redisLabel));
  }

  async #sweepChunks(): Promise<void> {
    if (this.#sweeping) return; // Redis slow or paused: one sweep at a time
    this.#sweeping = true;
    try {
      for (const id of [...this.#chunks.keys()]) await this.#check(id);
    } catch {
      // Redis unreachable for now: the next sweep tries again.
    } finally {
      this.#sweeping = false;
    }
  }

  /** A chunk left the queue: its results are written, or it failed for good. Once per chunk. */
  #settleChunk(id: string, state: 'completed' | 'failed' | 'unknown'): Promise<void> {
    const chunk = this.#chunks.get(id);
    if (!chunk || chunk.merging) return Promise.resolve();
    chunk.merging = true;
    const settling = this.#settleNow(chunk, state).finally(() => this.#settling.delete(settling));
    this.#settling.add(settling);
    return settling;
  }

  async #settleNow(chunk: Chunk, state: 'completed' | 'failed' | 'unknown'): Promise<void> {
    const id = chunk.id;
    try {
      if (state === 'completed') await this.#merge(chunk);
      else {
        const job = state === 'failed' ? await this.#o.queue.getJob(id) : undefined;
        await this.#dropChunk(chunk);
        this.#events.onFatal(
          new QueueError(
            job?.failedReason !== undefined
              ? `chunk ${chunk.number} of run ${this.#o.runId} failed on the workers: ${job.failedReason}`
              : `chunk ${chunk.number} of run ${this.#o.runId} is no longer in Redis (restarted without persistence, or its keys were removed): the run stops here; resume it`,
          ),
        );
      }
    } catch (error) {
      chunk.merging = false; // Redis failed under us: the sweep tries again
      if (!(error instanceof InternalError)) return;
      this.#failed(error);
    }
  }

  async #merge(chunk: Chunk): Promise<void> {
    const job = await this.#o.queue.getJob(chunk.id);
    const value = job?.returnvalue as ChunkReturn | undefined;
    const text = value ? await this.#o.redis.get(value.results) : null;
    // Merged into the results file only by the coordinator that drives the run: checked in Redis first.
    await this.#fence();
    if (!value || text === null) {
      // Its results are gone (expired): its records are sent again, as a new chunk in the same slot.
      if (!(await this.#fencedWrite('forget', [this.#keys.chunks, ...(value ? [value.results] : [])], chunk.id))) return;
      await this.#o.queue.remove(chunk.id).catch(() => undefined);
      this.#chunks.delete(chunk.id);
      this.#enqueue([...chunk.calls.values()], chunk.slot, chunk.share);
      return;
    }
    for (const result of decodeResults(text)) {
      const call = chunk.calls.get(result.line);
      if (!call) continue;
      chunk.calls.delete(result.line);
      await this.#report(call, result.code, result.attempts, result.text);
    }
    for (const call of chunk.calls.values()) this.#unsent(call);
    chunk.calls.clear();
    this.#flush();
    this.#merged.attempts += value.attempts;
    this.#merged.throttled += value.throttled;
    if (value.latencies) this.#merged.addLatencies({histogram: value.latencies});
    if (value.outage.gaveUp) this.#events.onOutage({type: 'gave-up', pausedMs: value.outage.pausedMs, reason: value.outage.gaveUp});
    await this.#forget(chunk, value.results);
  }

  /** Removes a chunk from Redis (its results, the job, its id in the run's set) and frees its slot. */
  async #forget(chunk: Chunk, results: string | undefined): Promise<void> {
    if (!(await this.#fencedWrite('forget', [this.#keys.chunks, ...(results ? [results] : [])], chunk.id))) return;
    await this.#o.queue.remove(chunk.id).catch(() => undefined);
    this.#chunks.delete(chunk.id);
    this.#free.push(chunk.slot);
    // Records that came while every slot was taken go out now, in the slot just freed.
    if (this.#buffer.length > 0 && !this.#linger) this.#dispatch();
    this.#updatePaused();
    this.#room.check();
  }

  /** A chunk that will not run: its records get no result (a resume sends them). */
  async #dropChunk(chunk: Chunk): Promise<void> {
    if (!this.#chunks.has(chunk.id)) return;
    chunk.merging = true;
    const calls = [...chunk.calls.values()];
    chunk.calls.clear();
    for (const call of calls) this.#unsent(call);
    await this.#forget(chunk, undefined).catch(() => undefined);
  }

  async #report(call: RecordCall, code: number, attempts: number, text: string): Promise<void> {
    // The error text of a failed record, for the summary's top errors (read back from its line: failures only).
    const details = code !== Status.OK ? (JSON.parse(text) as {error?: string}).error : undefined;
    const done = this.#events.onFinal(call, code, attempts, text, details);
    if (done) await done;
    this.#settle();
  }

  #unsent(call: RecordCall): void {
    this.#events.onUnsent(call);
    this.#settle();
  }

  #settle(): void {
    this.#outstanding--;
    this.#idle.check();
  }

  #progress(id: string, progress: ChunkProgress): void {
    const chunk = this.#chunks.get(id);
    if (!chunk || typeof progress !== 'object' || progress === null) return;
    chunk.progress = progress;
    this.#updatePaused();
  }

  /** The run waits for its backend while any chunk does (one backend): `down` and `up` as a local run has them. */
  #updatePaused(): void {
    const chunk = [...this.#chunks.values()].find((c) => c.progress?.paused);
    const waiting =
      this.#redisDown !== undefined
        ? {
            since: this.#redisDown,
            reason: `Redis${this.#o.redisLabel ? ` at ${this.#o.redisLabel}` : ''} does not answer (paused, partitioned or failing over); the run goes on when it does`,
          }
        : chunk
          ? {since: Date.now() - (chunk.progress!.pausedForMs ?? 0), reason: chunk.progress!.reason ?? 'no answer'}
          : undefined;
    if (waiting && !this.#paused) {
      this.#paused = waiting;
      this.#pauses++;
      this.#events.onOutage({type: 'down', reason: this.#paused.reason});
    } else if (!waiting && this.#paused) {
      const pausedMs = Date.now() - this.#paused.since;
      this.#pausedMs += pausedMs;
      this.#paused = undefined;
      this.#events.onOutage({type: 'up', pausedMs});
    }
  }
}
