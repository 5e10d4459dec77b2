import {Queue, QueueEvents} from 'bullmq';
import type {Redis} from 'ioredis';
import {InternalError, QueueError, UsageError} from '../errors.js';
import type {LoadedJob} from '../jobs/load.js';
import {fixedMetadata} from '../jobs/metadata-template.js';
import type {Logger} from '../log.js';
import {countRegularFileLines} from '../jobs/input.js';
import {newRunId, runJob, type RunOptions} from '../run/run.js';
import type {RunSummary} from '../run/stats.js';
import {adoptChunks} from './adopt.js';
import {QueueExecutor} from './executor-queue.js';
import {RunLease} from './lease.js';
import {CHUNKS_QUEUE, connectRedis, keysTtlMs, redactUrl, refreshRunKeys, runKeys, watchBullmq, type QueueTarget} from './redis.js';
import {shipRun} from './run-spec.js';
import {DEFAULT_CHUNK_SIZE} from './target.js';

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
  /** Lets go of the lease (and closes the connection if the claim opened it). Idempotent. */
  release(): Promise<void>;
}

/**
 * Takes the lease of a distributed run before anything of it is recorded: a second coordinator of
 * a live run is refused here (exit 2), leaving the state database and Redis as they were.
 */
export async function claimQueuedRun(runId: string, queueOptions: QueueTarget & {readonly redis?: Redis; readonly logger?: Logger}): Promise<QueueClaim> {
  const ttlMs = keysTtlMs();
  const redis = queueOptions.redis ?? (await connectRedis(queueOptions, queueOptions.logger));
  const keys = runKeys(queueOptions.prefix, runId);
  let released: Promise<void> | undefined;
  const claim: QueueClaim = {
    runId,
    redis,
    onLost: undefined,
    release: () => (released ??= (async () => {
      await lease?.release();
      if (!queueOptions.redis) await redis.quit().catch(() => redis.disconnect());
    })()),
  };
  let lease: RunLease | undefined;
  try {
    lease = await RunLease.acquire(redis, keys.lease, runId, (holder) => claim.onLost?.(holder),
      // While the run lives, its keys live: a coordinator that dies leaves them for ttlMs, for a resume.
      () => void refreshRunKeys(redis, queueOptions.prefix, runId, ttlMs).catch(() => undefined));
  } catch (error) {
    await claim.release();
    throw error;
  }
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
  if (!Number.isSafeInteger(chunkSize) || chunkSize < 1) throw new UsageError(`--chunk-size: expected an integer from 1 and up, got ${chunkSize}`);
  if (job.method.kind !== 'unary') throw new UsageError(`--redis: ${job.method.name} is a ${job.method.kind} method; distributed runs call unary methods only (run it without --redis)`);
  const runId = options.runId ?? queueOptions.claim?.runId ?? newRunId();
  if (queueOptions.claim && queueOptions.claim.runId !== runId) throw new InternalError(`runQueued: the claim is of run ${queueOptions.claim.runId}, not ${runId}`);
  const log = queueOptions.logger ?? options.logger;
  const {prefix} = queueOptions;
  const claim = queueOptions.claim ?? (await claimQueuedRun(runId, {...queueOptions, ...(log ? {logger: log} : {})}));
  const {redis} = claim;
  const keys = runKeys(prefix, runId);
  const ttlMs = keysTtlMs();
  let executor: QueueExecutor | undefined;
  let lost: string | undefined;
  claim.onLost = (holder) => {
    lost = holder === undefined
      ? `the lease of run ${runId} is no longer in Redis (Redis lost its data, or the lease expired while this coordinator could not reach Redis and another drove the run since): this one stopped and wrote nothing more`
      : `run ${runId} was taken over by another coordinator (${holder}) while this one could not reach Redis: this one stopped and wrote nothing more`;
    executor?.abandon(lost);
  };
  const queue = new Queue(CHUNKS_QUEUE, {connection: redis, prefix});
  const events = new QueueEvents(CHUNKS_QUEUE, {connection: redis, prefix});
  watchBullmq(redis, queue, events);
  try {
    await redis.set(keys.spec, JSON.stringify({...shipRun(job, runId), keysTtlMs: ttlMs}), 'PX', ttlMs);
    await redis.del(keys.control);
    await events.waitUntilReady();
    const adopted = options.resume ? await adoptChunks(redis, queue, prefix, runId, log?.child({job: job.spec.name, runId})) : undefined;
    await refreshRunKeys(redis, prefix, runId, ttlMs);
    const slots = Math.min(MAX_SLOTS, job.spec.concurrency);
    const limits = {concurrency: job.spec.concurrency, rps: job.spec.rps};
    // The run's size, when the input is a regular file: a run of few chunks gives each a larger share.
    const inputLines = countRegularFileLines(job.spec)?.catch(() => undefined);
    const summary = await runJob(job, {
      ...options,
      runId,
      executor: (runEvents, flush) => (executor = new QueueExecutor({redis, queue, events, prefix, runId, limits, slots, ...(inputLines ? {inputLines} : {}), chunkSize, keysTtlMs: ttlMs, jobMetadata: fixedMetadata(job.spec), redisLabel: redactUrl(queueOptions.url), ...(adopted ? {adopted} : {})}, runEvents, flush)),
    });
    if (lost) {
      const error = new QueueError(lost);
      error.summary = {...summary, status: 'interrupted', interruptReason: error.message};
      throw error;
    }
    if (executor && executor.chunksInQueue === 0) await redis.del(keys.spec, keys.chunks, keys.control, keys.probe, keys.lost);
    return summary;
  } finally {
    await events.close().catch(() => undefined);
    await queue.close().catch(() => undefined);
    await claim.release();
  }
}
