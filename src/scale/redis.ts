import {Redis} from 'ioredis';
import {DURATION_HINT, parseDuration} from '../util/duration.js';
import {getErrorMessage, UsageError} from '../errors.js';
import type {Logger} from '../util/log.js';
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
    /** The run's generation: incremented each time a coordinator takes the lease (its fencing token). */
    generation: `${base}:lease:generation`,
    /** Ids of the run's chunks in the queue (added before the chunk, removed once merged). */
    chunks: `${base}:chunks`,
    /** `stop` or `cancel`: read by the workers running the run's chunks. */
    control: `${base}:control`,
    /** Written by the coordinator at each sweep: a Redis that refuses writes (out of memory) is seen at once. */
    probe: `${base}:probe`,
    /** Attempts made for chunks whose work was thrown away (lock lost, handed back): added to the run's attempts. */
    lost: `${base}:lost`,
    /** The results of one attempt at a chunk. */
    results: (chunkId: string, attempt: string) => `${base}:res:${chunkId}:${attempt}`,
  };
}

/** Every key a run writes expires this long after its coordinator was last alive (see `keysTtlMs`). */
export const DEFAULT_KEYS_TTL_MS = 24 * 3600_000;
/** The shortest TTL allowed: the lease's length (`LEASE_MS`), three renewals. */
const MIN_KEYS_TTL_MS = 15_000;

/**
 * How long a run's keys outlive its coordinator: env `GRPC_BATCH_KEYS_TTL` (a duration), default 24h.
 * Every key a run writes (its settings, chunk jobs with their encoded requests, results, control) has
 * this TTL, refreshed while the coordinator holds the lease: a run whose coordinator died and is not
 * resumed within it leaves nothing in Redis; one resumed within it goes on where it was.
 */
export function keysTtlMs(env: NodeJS.ProcessEnv = process.env): number {
  const text = env['GRPC_BATCH_KEYS_TTL'];
  if (text === undefined || text === '') return DEFAULT_KEYS_TTL_MS;
  const ms = parseDuration(text);
  // Refreshed at each lease renewal (every LEASE_MS / 3): a TTL shorter than the lease could lapse mid-run.
  if (ms === undefined || ms < MIN_KEYS_TTL_MS)
    throw new UsageError(
      `GRPC_BATCH_KEYS_TTL: expected ${DURATION_HINT}, at least 15s (the coordinator's lease); got ${JSON.stringify(text)}`,
    );
  return ms;
}

/** Whether Redis refused a write for want of memory (`maxmemory` reached under `noeviction`). */
export function isOutOfMemory(error: unknown): boolean {
  return /^OOM\b/.test(getErrorMessage(error));
}

/** What a run that stops on an out-of-memory Redis says: what happened and the fix. */
export function outOfMemoryMessage(runId: string, where: string | undefined): string {
  return (
    `Redis${where ? ` at ${where}` : ''} is out of memory (OOM: used memory > maxmemory, maxmemory-policy noeviction) and refuses writes: run ${runId} stops here, nothing more is sent; ` +
    `raise maxmemory (redis-cli${where ? ` -u ${where}` : ''} CONFIG SET maxmemory 2gb, and in redis.conf), then resume the run`
  );
}

/** The key of a chunk's BullMQ job hash (its data: the records' encoded requests). */
export function chunkJobKey(prefix: string, chunkId: string): string {
  return `${prefix}:${CHUNKS_QUEUE}:${chunkId}`;
}

/**
 * Sets the TTL of every key of a run that lives as long as the run: its settings, control, set of
 * chunks and the chunks' job hashes (results keys get theirs from the worker that writes them).
 */
export async function refreshRunKeys(redis: Redis, prefix: string, runId: string, ttlMs: number): Promise<void> {
  const keys = runKeys(prefix, runId);
  const ids = await redis.smembers(keys.chunks);
  const multi = redis
    .multi()
    .pexpire(keys.spec, ttlMs)
    .pexpire(keys.control, ttlMs)
    .pexpire(keys.chunks, ttlMs)
    .pexpire(keys.generation, ttlMs);
  for (const id of ids) multi.pexpire(chunkJobKey(prefix, id), ttlMs);
  await multi.exec();
}

/**
 * One log line per Redis fault, whatever the number of connections and reconnect attempts (ioredis
 * reports each failed reconnect; BullMQ re-emits them on each queue, worker and events stream): the
 * first error after Redis was reachable, then `redis:recovered` once a connection is ready again.
 * Under `--log-format json` both are structured lines; nothing else about them reaches stderr.
 */
export class RedisFaults {
  readonly #log: Logger | undefined;
  #down: {readonly since: number; readonly error: string} | undefined;
  #last = '';
  readonly #others = new Map<string, number>();

  constructor(log?: Logger) {
    this.#log = log;
  }

  /** The last error seen, for a first connection that fails. */
  get lastError(): string {
    return this.#last;
  }

  /** Whether Redis is unreachable now, as far as the connections watched know. */
  get down(): boolean {
    return this.#down !== undefined;
  }

  readonly report = (error: unknown): void => {
    const message = getErrorMessage(error);
    this.#last = message;
    if (!isConnectionError(error)) {
      // Another fault (a command refused...): once per message a minute.
      const now = Date.now();
      if ((this.#others.get(message) ?? 0) > now - 60_000) return;
      this.#others.set(message, now);
      if (this.#others.size > 100) this.#others.clear();
      this.#log?.warn({event: 'redis:error', error: message}, `redis: ${message}`);
      return;
    }
    if (this.#down) return;
    this.#down = {since: Date.now(), error: message};
    this.#log?.warn({event: 'redis:error', error: message}, `redis: ${message} (reconnecting; logged once until Redis answers again)`);
  };

  readonly ready = (): void => {
    if (!this.#down) return;
    const downMs = Date.now() - this.#down.since;
    this.#down = undefined;
    this.#log?.info({event: 'redis:recovered', downMs}, `redis: reachable again after ${downMs} ms`);
  };

  /** Routes an ioredis client's or a BullMQ object's `error` (and `ready`) events here. */
  watch(emitter: {on(event: 'error', listener: (error: Error) => void): unknown; on(event: 'ready', listener: () => void): unknown}): void {
    emitter.on('error', this.report);
    emitter.on('ready', this.ready);
  }
}

const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/** Whether an error is about reaching Redis (not about a command). */
function isConnectionError(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code && CONNECTION_CODES.has(code)) return true;
  return /Connection is closed|connect ETIMEDOUT|Socket closed unexpectedly|Stream isn't writeable/i.test(getErrorMessage(error));
}

const faultsByConnection = new WeakMap<Redis, RedisFaults>();

/** The fault logger of a connection made by `connectRedis` (one without a logger for another). */
export function redisFaults(redis: Redis): RedisFaults {
  let faults = faultsByConnection.get(redis);
  if (!faults) {
    faults = new RedisFaults();
    faults.watch(redis);
    faultsByConnection.set(redis, faults);
  }
  return faults;
}

/**
 * Routes the errors of BullMQ objects on `redis` (a Queue, a QueueEvents, a Worker) to the
 * connection's fault logger, those of their own (blocking) connections included: without a
 * listener BullMQ prints each error's stack on stderr, and ioredis an "Unhandled error event".
 */
export function watchBullmq(
  redis: Redis,
  ...objects: readonly {on(event: 'error', listener: (error: Error) => void): unknown; getBackend(): unknown}[]
): void {
  const faults = redisFaults(redis);
  for (const object of objects) {
    object.on('error', faults.report);
    const blocking = (object.getBackend() as {readonly blockingClient?: Promise<unknown>} | undefined)?.blockingClient;
    blocking?.then(
      (client) => {
        if (client && client !== redis && typeof (client as Redis).on === 'function') faults.watch(client as Redis);
      },
      () => undefined,
    );
  }
}

/**
 * A connection for BullMQ and grpc-batch's own keys. `maxRetriesPerRequest: null`: a command waits
 * through a Redis outage instead of failing (the run pauses; BullMQ requires it of workers). The
 * first connection is checked with a ping, so a wrong URL fails at once with a clear message.
 * Its faults are logged once each (`RedisFaults`).
 */
export async function connectRedis(target: QueueTarget, log?: Logger): Promise<Redis> {
  const redis = new Redis(target.url, {maxRetriesPerRequest: null, lazyConnect: true, connectionName: `grpc-batch:${process.pid}`});
  const faults = new RedisFaults(log);
  faults.watch(redis);
  faultsByConnection.set(redis, faults);
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      redis.connect().then(() => redis.ping()),
      new Promise(
        (_, reject) =>
          (timer = setTimeout(() => reject(new Error(faults.lastError || `no answer in ${CONNECT_TIMEOUT_MS} ms`)), CONNECT_TIMEOUT_MS)),
      ),
    ]);
  } catch (error) {
    redis.disconnect();
    throw new UsageError(`--redis: cannot reach Redis at ${redactUrl(target.url)}: ${getErrorMessage(error)}`, {cause: error});
  } finally {
    clearTimeout(timer);
  }
  try {
    checkEvictionPolicy(await redis.info('memory'), target.url);
  } catch (error) {
    redis.disconnect();
    throw error;
  }
  return redis;
}

/**
 * Refuses a Redis that evicts keys (any `maxmemory-policy` but `noeviction`, which BullMQ requires):
 * under memory pressure it would drop a run's settings or chunks mid-run, silently. With
 * `noeviction`, a full Redis refuses writes instead, and the run stops (resumable). Read from
 * `INFO memory` (managed Redis services often disable CONFIG); no field, no check.
 */
export function checkEvictionPolicy(info: string, url: string): void {
  const policy = /^maxmemory_policy:(\S+)/m.exec(info)?.[1];
  if (policy === undefined || policy === 'noeviction') return;
  const where = redactUrl(url);
  throw new UsageError(
    `--redis: Redis at ${where} has maxmemory-policy ${policy}: it may evict a run's settings or chunks when memory runs short, losing them mid-run. ` +
      `grpc-batch needs noeviction (a full Redis then refuses writes, and the run stops, resumable): redis-cli -u ${where} CONFIG SET maxmemory-policy noeviction, and maxmemory-policy noeviction in redis.conf (or your service's parameter group)`,
  );
}
