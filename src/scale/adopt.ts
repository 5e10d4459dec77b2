import type {Queue} from 'bullmq';
import type {Redis} from 'ioredis';
import type {Logger} from '../util/log.js';
import {RunStats} from '../engine/stats.js';
import {decodeResults, type ChunkReturn} from './chunk.js';
import {runKeys} from './redis.js';

/** How often chunks still running on workers are looked at while a resumed run waits for them. */
const POLL_MS = 250;

/** Results a resumed run takes over from the chunks its previous coordinator left in the queue. */
export interface AdoptedResults {
  /** Input line -> its result, for the lines no result line was written for yet. */
  readonly results: Map<number, {readonly code: number; readonly attempts: number; readonly text: string}>;
  /** Their attempts and latencies. */
  readonly stats: RunStats;
  /**
   * Deletes the adopted chunks from Redis once the run has read past them (`throughLine`; Infinity
   * once the run has read its whole input): their results are on disk by then.
   */
  release(throughLine: number): Promise<void>;
}

/**
 * On a resume: what the chunks of the run's previous coordinator came to. Finished chunks give
 * their results (written when the run reaches their lines, not sent again); chunks no worker took
 * are removed (their records are sent again); chunks still running are waited for (a dead worker's
 * go back to the queue after its lock expires, and are then removed).
 */
export async function adoptChunks(redis: Redis, queue: Queue, prefix: string, runId: string, log?: Logger): Promise<AdoptedResults> {
  const keys = runKeys(prefix, runId);
  const results: AdoptedResults['results'] = new Map();
  const stats = new RunStats();
  const adopted: {id: string; results: string; lastLine: number}[] = [];
  const pending = new Set(await redis.smembers(keys.chunks));
  let told = false;
  while (pending.size > 0) {
    for (const id of [...pending]) {
      const state = await queue.getJobState(id);
      if (state === 'active' || state === 'waiting-children') continue;
      if (state === 'completed') {
        const job = await queue.getJob(id);
        const value = job?.returnvalue as ChunkReturn | undefined;
        const text = value ? await redis.get(value.results) : null;
        if (value && text !== null) {
          let lastLine = 0;
          for (const result of decodeResults(text)) {
            results.set(result.line, {code: result.code, attempts: result.attempts, text: result.text});
            lastLine = Math.max(lastLine, result.line);
          }
          stats.attempts += value.attempts;
          stats.throttled += value.throttled;
          if (value.latencies) stats.addLatencies({histogram: value.latencies});
          adopted.push({id, results: value.results, lastLine});
          pending.delete(id);
          continue;
        }
      }
      // Waiting, delayed, failed, gone, or finished with its results expired: its records are sent again.
      if (state !== 'unknown' && (await queue.remove(id)) !== 1) continue; // taken by a worker meanwhile
      await redis.srem(keys.chunks, id);
      pending.delete(id);
    }
    if (pending.size === 0) break;
    if (!told) {
      told = true;
      log?.info(
        {event: 'run:adopting', chunks: pending.size},
        `waiting for ${pending.size} chunks of the previous coordinator still running on workers`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  if (adopted.length > 0)
    log?.info(
      {event: 'run:adopted', chunks: adopted.length, records: results.size},
      `${results.size} records finished by the workers meanwhile are taken over, not sent again`,
    );
  return {
    results,
    stats,
    async release(throughLine) {
      for (const chunk of adopted.filter((c) => c.lastLine <= throughLine)) {
        await redis.multi().del(chunk.results).srem(keys.chunks, chunk.id).exec();
        await queue.remove(chunk.id).catch(() => undefined);
      }
    },
  };
}
