import {existsSync} from 'node:fs';
import {createInterface} from 'node:readline';
import {parseStatus, Status} from '../codec/status.js';
import {openDecompressed} from './input.js';
import {identityOf} from './record-identity.js';
import type {ResultField} from './record-key.js';

/**
 * What an earlier attempt at a run already finished, read back from its results file: the results
 * file is the record of truth (it is flushed before any checkpoint is taken), so a record with a
 * result line is never sent again, and one without is.
 */
export interface PriorResults {
  /** Input lines with a result, ascending (an Int32Array: 4 bytes a record, even at millions). */
  readonly finished: Int32Array;
  /** Lines that could not be parsed (none unless the file was edited by hand). */
  readonly unreadable: number;
  /**
   * With `keyFields` (a job module's run): how many result lines each key identity has (see
   * `identityOf`), the module's records being resumed by key, not by line.
   */
  readonly keys?: Map<string, number>;
  /** With `keyFields`: result lines of records that were sent (not INVALID) yet lack a key field (resultFields changed since). */
  readonly sentWithoutKey?: number;
  /** With `keyFields`: the fields those lines lack. */
  readonly missingKeyFields?: readonly string[];
  /** Replies in the results' `response` arrays (server-streaming methods). */
  readonly replies: number;
}

/** What reading prior results counts into: the run's stats (`RunStats` in src/engine/stats.ts). */
export interface PriorTally {
  total: number;
  lastLine: number;
  attempts: number;
  recordInvalid(reason: string): void;
  recordFinal(code: number, attempts: number, details?: string): void;
}

/**
 * Reads a results file, adding its counts to `stats`. A missing file means nothing was finished.
 * `keyFields`: also count the lines of each key (a job module's run, resumed by key).
 */
export async function readPriorResults(file: string, stats: PriorTally, keyFields?: readonly ResultField[]): Promise<PriorResults> {
  const keys = keyFields ? new Map<string, number>() : undefined;
  if (!existsSync(file))
    return {finished: new Int32Array(0), unreadable: 0, replies: 0, ...(keys ? {keys, sentWithoutKey: 0, missingKeyFields: []} : {})};
  let lines = new Int32Array(1024);
  let count = 0;
  let unreadable = 0;
  let replies = 0;
  let sentWithoutKey = 0;
  const missingKeyFields = new Set<string>();
  const reader = createInterface({input: openDecompressed(file).stream, crlfDelay: Infinity}); // .gz: gunzipped
  for await (const text of reader) {
    if (text.trim() === '') continue;
    let result: {line?: unknown; key?: unknown; status?: unknown; code?: unknown; attempts?: unknown; error?: unknown; response?: unknown};
    try {
      result = JSON.parse(text) as typeof result;
    } catch {
      unreadable++;
      continue;
    }
    if (typeof result.line !== 'number' || typeof result.status !== 'string') {
      unreadable++;
      continue;
    }
    if (count === lines.length) {
      const grown = new Int32Array(lines.length * 2);
      grown.set(lines);
      lines = grown;
    }
    lines[count++] = result.line;
    if (keys && keyFields) {
      const key = result.key !== null && typeof result.key === 'object' ? (result.key as Record<string, unknown>) : undefined;
      const {identity, missing} = identityOf(key, keyFields);
      keys.set(identity, (keys.get(identity) ?? 0) + 1);
      if (missing.length > 0 && result.status !== 'INVALID') {
        sentWithoutKey++;
        for (const name of missing) missingKeyFields.add(name);
      }
    }
    if (Array.isArray(result.response)) replies += result.response.length;
    stats.total++;
    stats.lastLine = Math.max(stats.lastLine, result.line);
    const attempts = typeof result.attempts === 'number' ? result.attempts : 1;
    stats.attempts += attempts;
    const error = typeof result.error === 'string' ? result.error : '';
    if (result.status === 'INVALID') stats.recordInvalid(error);
    else stats.recordFinal(typeof result.code === 'number' ? result.code : (parseStatus(result.status) ?? Status.UNKNOWN), attempts, error);
  }
  const finished = lines.subarray(0, count).sort();
  return {finished, unreadable, replies, ...(keys ? {keys, sentWithoutKey, missingKeyFields: [...missingKeyFields]} : {})};
}

/** Binary search in an ascending Int32Array. */
export function hasLine(sorted: Int32Array, line: number): boolean {
  let lo = 0;
  let hi = sorted.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const value = sorted[mid]!;
    if (value === line) return true;
    if (value < line) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}
