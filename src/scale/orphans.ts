import type {Redis} from 'ioredis';
import type {Logger} from '../util/log.js';
import {CHUNKS_QUEUE, chunkJobKey, runKeys} from './redis.js';

/** Where BullMQ keeps the ids of a queue's jobs: lists, then sorted sets, then a set. */
const ID_LISTS = ['wait', 'paused', 'active'] as const;
const ID_ZSETS = ['completed', 'failed', 'delayed', 'prioritized'] as const;
const ID_SETS = ['stalled'] as const;

/** What a sweep removed. */
export interface SweepResult {
  /** Runs found orphaned: neither their settings nor their lease are in Redis. */
  readonly runs: number;
  /** Chunk ids removed from the queue (with their job hashes, when still there). */
  readonly chunks: number;
  /** grpc-batch keys of those runs removed (results of chunks, sets of ids...). */
  readonly keys: number;
}

/**
 * Removes what is left of runs whose coordinator is long gone: a run's settings key and its lease
 * expire `GRPC_BATCH_KEYS_TTL` after its coordinator was last alive (and both are deleted when it
 * succeeds), so a chunk of a run with neither is an orphan, as are the run's other keys. Its job
 * hash may have expired already, but BullMQ keeps its id in the queue's lists (`wait`, `completed`...)
 * with no TTL: those ids, what is left of their jobs, and the run's keys (results of chunks) are
 * removed. A chunk a worker holds locked is left for the next sweep. Run by each coordinator at
 * start and by each worker at start: a run can be resumed until its settings expire, never after.
 */
export async function sweepOrphans(redis: Redis, prefix: string, log?: Logger): Promise<SweepResult> {
  const queue = `${prefix}:${CHUNKS_QUEUE}`;
  const live = new Map<string, boolean>();
  const isOrphan = async (runId: string): Promise<boolean> => {
    let alive = live.get(runId);
    if (alive === undefined) {
      const keys = runKeys(prefix, runId);
      alive = (await redis.exists(keys.spec, keys.lease)) > 0;
      live.set(runId, alive);
    }
    return !alive;
  };
  let chunks = 0;
  const ids = new Set<string>();
  for (const name of ID_LISTS) for (const id of await redis.lrange(`${queue}:${name}`, 0, -1)) ids.add(id);
  for (const name of ID_ZSETS) for (const id of await redis.zrange(`${queue}:${name}`, 0, -1)) ids.add(id);
  for (const name of ID_SETS) for (const id of await redis.smembers(`${queue}:${name}`)) ids.add(id);
  for (const id of ids) {
    const dot = id.indexOf('.');
    if (dot <= 0 || !(await isOrphan(id.slice(0, dot)))) continue; // not a chunk of a run, or its run lives
    const job = chunkJobKey(prefix, id);
    if ((await redis.exists(`${job}:lock`)) > 0) continue; // a worker holds it: the next sweep
    const multi = redis.multi();
    for (const name of ID_LISTS) multi.lrem(`${queue}:${name}`, 0, id);
    for (const name of ID_ZSETS) multi.zrem(`${queue}:${name}`, id);
    for (const name of ID_SETS) multi.srem(`${queue}:${name}`, id);
    multi.del(job, `${job}:logs`);
    await multi.exec();
    chunks++;
  }
  // The runs' own keys (`<prefix>:runs:<runId>:...`) whose run is gone: results of chunks mostly.
  let keys = 0;
  let cursor = '0';
  const base = `${prefix}:runs:`;
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', `${base}*:*`, 'COUNT', 1000);
    cursor = next;
    const gone: string[] = [];
    for (const key of found) {
      const runId = key.slice(base.length).split(':')[0]!;
      if (runId !== '' && (await isOrphan(runId))) gone.push(key);
    }
    if (gone.length > 0) keys += await redis.del(...gone);
  } while (cursor !== '0');
  const runs = [...live.values()].filter((alive) => !alive).length;
  if (chunks + keys > 0)
    log?.info(
      {event: 'redis:swept', runs, chunks, keys},
      `removed what was left in Redis of ${runs} runs whose coordinator is long gone: ${chunks} chunks, ${keys} keys`,
    );
  return {runs, chunks, keys};
}
