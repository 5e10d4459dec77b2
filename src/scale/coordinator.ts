import {Queue, QueueEvents} from 'bullmq';
import type {Redis} from 'ioredis';
import {FencedError, getErrorMessage, InternalError, UsageError} from '../errors.js';
import type {LoadedJob} from '../config/load.js';
import {fixedMetadata} from '../config/metadata-template.js';
import type {Logger} from '../util/log.js';
import {countRegularFileLines} from '../io/input.js';
import {newRunId, runJob, type RunOptions} from '../engine/run.js';
import type {RunSummary} from '../engine/stats.js';
import {adoptChunks} from './adopt.js';
import {QueueExecutor} from './executor-queue.js';
import {generationKey, RunLease} from './lease.js';
import {CHUNKS_QUEUE, connectRedis, keysTtlMs, redactUrl, refreshRunKeys, runKeys, watchBullmq, type QueueTarget} from './redis.js';
import {sweepOrphans} from './orphans.js';
import {shipRun} from './run-spec.js';
import {DEFAULT_CHUNK_SIZE} from './target.js';

/** How long letting go of the lease and closing the queue may wait for Redis at the end. */
const RELEASE_MS = 5000;

/** `work`, or nothing once `ms` have passed (a Redis that does not answer holds no shutdown). */
async function within(ms: number, work: Promise<unknown> | undefined): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([work, new Promise((resolve) => (timer = setTimeout(resolve, ms)))]).catch(() => undefined);
  clearTimeout(timer);
}

/** Chunks of one run in the queue at once, at most (fewer when `concurrency` is smaller). */
export const MAX_SLOTS = 8;

export interface QueueRunOptions extends QueueTarget {
  /** Records per chunk. Minimum: 1. @default 1000 */
  readonly chunkSize?: number;
  /** A connection to use (the daemon shares one); else one is opened and closed. */
  readonly redis?: Redis;
  readonly logger?: Logger;
  /** The run's lease, taken beforehand (`claimQueuedRun`); else `runQueued` takes it. */
  readonly claim?: QueueClaim;
}

/** A run's lease in Redis, held by this coordinator, and the connection it holds it on. */
export interface QueueClaim {
  readonly runId: string;
  readonly redis: Redis;
  /** Called when the lease is lost: taken over by another coordinator (`holder`), or gone (undefined). */
  onLost: ((holder: string | undefined) => void) | undefined;
  /** The lease: its generation, and the check made before each write (`RunLease#check`). */
  readonly lease: RunLease;
  /** Lets go of the lease (and closes the connection if the claim opened it). Idempotent. */
  release(): Promise<void>;
}

/**
 * Takes the lease of a distributed run before anything of it is recorded: a second coordinator of
 * a live run is refused here (exit 2), leaving the state database and Redis as they were.
 */
export async function claimQueuedRun(
  runId: string,
  queueOptions: QueueTarget & {readonly redis?: Redis; readonly logger?: Logger},
): Promise<QueueClaim> {
  const ttlMs = keysTtlMs();
  const redis = queueOptions.redis ?? (await connectRedis(queueOptions, queueOptions.logger));
  const keys = runKeys(queueOptions.prefix, runId);
  let released: Promise<void> | undefined;
  let lease: RunLease | undefined;
  const release = () =>
    (released ??= (async () => {
      // Redis silent (paused, partitioned): the lease is let go of by its TTL, the connection dropped.
      await within(RELEASE_MS, lease?.release());
      if (!queueOptions.redis)
        await within(
          RELEASE_MS,
          redis.quit().catch(() => undefined),
        ).finally(() => redis.disconnect());
    })());
  try {
    lease = await RunLease.acquire(
      redis,
      keys.lease,
      runId,
      (holder) => claim.onLost?.(holder),
      // While the run lives, its keys live: a coordinator that dies leaves them for ttlMs, for a resume.
      () => void refreshRunKeys(redis, queueOptions.prefix, runId, ttlMs).catch(() => undefined),
      undefined,
      ttlMs,
    );
  } catch (error) {
    await release();
    throw error;
  }
  queueOptions.logger?.info(
    {event: 'run:lease', runId, generation: lease.generation},
    `run ${runId}: lease taken, generation ${lease.generation}`,
  );
  const claim: QueueClaim = {runId, redis, onLost: undefined, lease, release};
  return claim;
}

/**
 * Runs a job as the coordinator of a distributed run: it alone reads the input and writes the
 * results and failures files, as `runJob` does, while the calls are made by `grpc-batch worker`s
 * taking chunks from the queue. It holds the run's lease (one coordinator per run), ships the
 * run's settings and types to Redis, and on a resume takes over what the workers finished since.
 */
export async function runQueued(job: LoadedJob, options: RunOptions, queueOptions: QueueRunOptions): Promise<RunSummary> {
  const chunkSize = queueOptions.chunkSize ?? DEFAULT_CHUNK_SIZE;
  if (!Number.isSafeInteger(chunkSize) || chunkSize < 1)
    throw new UsageError(`--chunk-size: expected an integer from 1 and up, got ${chunkSize}`);
  if (job.method.kind !== 'unary')
    throw new UsageError(
      `--redis: ${job.method.name} is a ${job.method.kind} method; distributed runs call unary methods only (run it without --redis)`,
    );
  const runId = options.runId ?? queueOptions.claim?.runId ?? newRunId();
  if (queueOptions.claim && queueOptions.claim.runId !== runId)
    throw new InternalError(`runQueued: the claim is of run ${queueOptions.claim.runId}, not ${runId}`);
  const log = queueOptions.logger ?? options.logger;
  const {prefix} = queueOptions;
  const claim = queueOptions.claim ?? (await claimQueuedRun(runId, {...queueOptions, ...(log ? {logger: log} : {})}));
  const {redis} = claim;
  const keys = runKeys(prefix, runId);
  const ttlMs = keysTtlMs();
  let executor: QueueExecutor | undefined;
  const {lease} = claim;
  claim.onLost = (holder) => executor?.abandon(lease.fenced(holder));
  // Every state write is fenced: checked in Redis to be this generation's first (a checkpoint, the
  // input's hash). Redis silent past maxOutage: the check cannot be made, the write is skipped (a
  // resume goes by the results file), and nothing waits for Redis.
  const fenced = <A>(write: ((a: A) => unknown) | undefined) =>
    write &&
    (async (a: A) => {
      await Promise.race([lease.check().then(() => (executor?.redisGone ? undefined : write(a))), executor?.redisGoneAt]).catch(
        (error: unknown) => {
          if (error instanceof FencedError) executor?.abandon(error); // before the run's stop, which would signal the workers
          throw error;
        },
      );
    });
  const queue = new Queue(CHUNKS_QUEUE, {connection: redis, prefix});
  const events = new QueueEvents(CHUNKS_QUEUE, {connection: redis, prefix});
  watchBullmq(redis, queue, events);
  try {
    await redis.set(keys.spec, JSON.stringify({...shipRun(job, runId), keysTtlMs: ttlMs}), 'PX', ttlMs);
    // What runs whose coordinator is long gone left in the queue (ids of expired chunks, their results).
    await sweepOrphans(redis, prefix, log).catch((error: unknown) =>
      log?.warn(
        {event: 'redis:sweep-failed', error: getErrorMessage(error)},
        `could not sweep what old runs left in Redis: ${getErrorMessage(error)}`,
      ),
    );
    await redis.del(keys.control);
    await events.waitUntilReady();
    const adopted = options.resume ? await adoptChunks(redis, queue, prefix, runId, log?.child({job: job.spec.name, runId})) : undefined;
    await refreshRunKeys(redis, prefix, runId, ttlMs);
    const slots = Math.min(MAX_SLOTS, job.spec.concurrency);
    const limits = {concurrency: job.spec.concurrency, rps: job.spec.rps};
    // The run's size, when the input is a regular file: a run of few chunks gives each a larger share.
    const inputLines = countRegularFileLines(job.spec)?.catch(() => undefined);
    const onCheckpoint = fenced(options.onCheckpoint);
    const onInputRead = fenced(options.onInputRead);
    const summary = await runJob(job, {
      ...options,
      runId,
      ...(onCheckpoint ? {onCheckpoint} : {}),
      ...(onInputRead ? {onInputRead} : {}),
      executor: (runEvents, flush) =>
        (executor = new QueueExecutor(
          {
            redis,
            queue,
            events,
            prefix,
            runId,
            lease,
            limits,
            slots,
            ...(inputLines ? {inputLines} : {}),
            chunkSize,
            keysTtlMs: ttlMs,
            maxOutageMs: job.spec.maxOutageMs,
            jobMetadata: fixedMetadata(job.spec),
            redisLabel: redactUrl(queueOptions.url),
            ...(adopted ? {adopted} : {}),
          },
          runEvents,
          flush,
        )),
    });
    // The last check: the run's end is recorded (by the caller) only by the coordinator that still drives it.
    if (!executor?.redisGone)
      await lease.check().catch((error: unknown) => {
        if (error instanceof FencedError) error.summary = {...summary, status: 'interrupted', interruptReason: error.message};
        throw error;
      });
    if (executor && executor.chunksInQueue === 0 && !executor.redisGone)
      await redis.del(keys.spec, keys.chunks, keys.control, keys.probe, keys.lost, generationKey(keys.lease));
    return summary;
  } finally {
    // Redis silent: nothing waits for it (the lease and the keys expire by their TTLs).
    const silent = executor?.redisGone === true;
    await within(
      silent ? 0 : RELEASE_MS,
      events.close().catch(() => undefined),
    ).finally(() => silent && events.disconnect().catch(() => undefined));
    await within(
      silent ? 0 : RELEASE_MS,
      queue.close().catch(() => undefined),
    ).finally(() => silent && queue.disconnect().catch(() => undefined));
    if (silent && !queueOptions.redis) redis.disconnect();
    await claim.release();
  }
}
