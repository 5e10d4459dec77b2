import {Redis} from 'ioredis';
import {getErrorMessage, UsageError} from '../errors.js';
import type {Logger} from '../log.js';
import {redactUrl, type QueueTarget} from './target.js';

export {checkQueueTarget, DEFAULT_PREFIX, redactUrl, type QueueTarget} from './target.js';

/** The queue of chunks: every run's, taken by every worker. */
export const CHUNKS_QUEUE = 'chunks';
/** The queue of scheduled ticks of daemon replicas. */
export const TICKS_QUEUE = 'ticks';
/** How long a first connection may take before the command gives up (a wrong URL, Redis down). */
const CONNECT_TIMEOUT_MS = 5000;

/** The names of grpc-batch's own keys next to BullMQ's (`<prefix>:chunks:*`, `<prefix>:ticks:*`). */
export function runKeys(prefix: string, runId: string) {
  const base = `${prefix}:runs:${runId}`;
  return {
    /** The shipped run (`ShippedRun` as JSON): what workers need. */
    spec: base,
    /** The coordinator's lease: who drives the run. */
    lease: `${base}:lease`,
    /** Ids of the run's chunks in the queue (added before the chunk, removed once merged). */
    chunks: `${base}:chunks`,
    /** `stop` or `cancel`: read by the workers running the run's chunks. */
    control: `${base}:control`,
    /** The results of one attempt at a chunk. */
    results: (chunkId: string, attempt: string) => `${base}:res:${chunkId}:${attempt}`,
  };
}

/**
 * A connection for BullMQ and grpc-batch's own keys. `maxRetriesPerRequest: null`: a command waits
 * through a Redis outage instead of failing (the run pauses; BullMQ requires it of workers). The
 * first connection is checked with a ping, so a wrong URL fails at once with a clear message.
 */
export async function connectRedis(target: QueueTarget, log?: Logger): Promise<Redis> {
  const redis = new Redis(target.url, {maxRetriesPerRequest: null, lazyConnect: true, connectionName: `grpc-batch:${process.pid}`});
  let lastError = '';
  let warnedAt = 0;
  redis.on('error', (error: unknown) => {
    lastError = getErrorMessage(error);
    // ioredis reports every failed reconnect: one warning per 10 s is enough.
    if (Date.now() - warnedAt > 10_000) {
      warnedAt = Date.now();
      log?.warn({event: 'redis:error', error: lastError}, `redis: ${lastError}`);
    }
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      redis.connect().then(() => redis.ping()),
      new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(lastError || `no answer in ${CONNECT_TIMEOUT_MS} ms`)), CONNECT_TIMEOUT_MS))),
    ]);
  } catch (error) {
    redis.disconnect();
    throw new UsageError(`--redis: cannot reach Redis at ${redactUrl(target.url)}: ${getErrorMessage(error)}`, {cause: error});
  } finally {
    clearTimeout(timer);
  }
  return redis;
}
