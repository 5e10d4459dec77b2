import {UsageError} from '../errors.js';

/**
 * The flags of a distributed run, checked without loading BullMQ or ioredis (they take a while to
 * load: a command loads them only when it is given `--redis`).
 */

/** The BullMQ prefix when `--prefix` is not given: every key of grpc-batch starts with it. */
export const DEFAULT_PREFIX = 'grpc-batch';
/** Records per chunk when `--chunk-size` is not given. */
export const DEFAULT_CHUNK_SIZE = 1000;
/** Chunks a worker (or a daemon replica) runs at once when `--chunks` is not given. */
export const DEFAULT_WORKER_CHUNKS = 8;

/** Where the queue lives: a Redis URL and the prefix of every key (one prefix = one grpc-batch cluster). */
export interface QueueTarget {
  /** `redis://[user:password@]host:port[/db]` or `rediss://` (TLS). */
  readonly url: string;
  /** @default 'grpc-batch' */
  readonly prefix: string;
}

/** The URL without its password, for messages. */
export function redactUrl(url: string): string {
  return url.replace(
    /^(rediss?:\/\/)([^@/]*)@/,
    (_, scheme: string, auth: string) => `${scheme}${auth.includes(':') ? `${auth.split(':')[0]}:***` : '***'}@`,
  );
}

/** Checks `--redis` and `--prefix`: a redis:// or rediss:// URL, a prefix without `:` or spaces. */
export function checkQueueTarget(url: string | undefined, prefix: string | undefined): QueueTarget {
  if (!url) throw new UsageError('--redis: expected a URL like redis://127.0.0.1:6379 (or set GRPC_BATCH_REDIS)');
  if (!/^rediss?:\/\/[^\s]+$/.test(url))
    throw new UsageError(`--redis: expected a URL like redis://127.0.0.1:6379, got "${redactUrl(url)}"`);
  const p = prefix ?? DEFAULT_PREFIX;
  if (!/^[A-Za-z0-9_.{}-]+$/.test(p))
    throw new UsageError(`--prefix: expected letters, digits, '.', '_', '-' (no ':' or spaces), got "${p}"`);
  return {url, prefix: p};
}
