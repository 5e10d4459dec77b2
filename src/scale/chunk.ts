import * as grpc from '@grpc/grpc-js';

/**
 * A chunk: a slice of a run's records, sent as one BullMQ job. Plain JSON both ways. The job's data
 * carries the records (already encoded: workers need no input and no .proto file) and the chunk's
 * share of the run's limits; its return value stays small (BullMQ copies it into its events stream),
 * and points at the results, which the worker stores under a key of their own.
 */
export interface ChunkData {
  readonly run: string;
  /** The chunk's number in the run (1-based, unique across the run's coordinators). */
  readonly chunk: number;
  /** Calls in flight this chunk may have: its share of the job's `concurrency`. */
  readonly concurrency: number;
  /** Calls per second this chunk may start: its share of the job's `rps` (0 = no limit). */
  readonly rps: number;
  /** Input lines, ascending. */
  readonly lines: readonly number[];
  /** The encoded requests, base64, one per line. */
  readonly requests: readonly string[];
  /**
   * Records' own metadata (templated from the record, or an envelope's), one per line, null for
   * the job's; values of `-bin` keys in base64. Present only when some record has its own.
   */
  readonly metadata?: readonly (Readonly<Record<string, readonly string[]>> | null)[];
  /** Records' own per-attempt deadlines (an envelope's), ms, one per line, null for the job's. */
  readonly deadlines?: readonly (number | null)[];
  /**
   * Set by a worker that handed the chunk back because it could not reach the backend: since when
   * (`Date.now()`) no worker reached it for this chunk. The job's `maxOutage` counts from there.
   */
  readonly downSince?: number;
}

/** What a worker returns for a chunk it ran. */
export interface ChunkReturn {
  /** Key of the results: one `<line> <code> <attempts> <result JSON>` line per finished record. */
  readonly results: string;
  readonly records: number;
  readonly ok: number;
  readonly failed: number;
  /** Lines that got no final outcome (the run was stopped, or the backend was unreachable for `maxOutage`). */
  readonly unsent: readonly number[];
  readonly attempts: number;
  readonly throttled: number;
  /** HDR histogram of the attempts' latencies, compressed base64 (`RunStats#shareLatencies`). */
  readonly latencies: string;
  readonly outage: {readonly pauses: number; readonly pausedMs: number; readonly gaveUp?: string};
  readonly limitRange?: {readonly min: number; readonly mean: number; readonly max: number};
  /** `host pid` of the worker. */
  readonly worker: string;
}

/** What a worker reports while it runs a chunk (BullMQ job progress), about twice a second. */
export interface ChunkProgress {
  readonly done: number;
  readonly calls: number;
  readonly limit: number;
  readonly attempts: number;
  readonly paused: boolean;
  readonly pausedForMs: number;
  readonly reason?: string;
}

/** One result line in the results key. */
export function encodeResult(line: number, code: number, attempts: number, text: string): string {
  return `${line} ${code} ${attempts} ${text}`;
}

/** Splits the results key's text back into results. */
export function* decodeResults(text: string): Generator<{line: number; code: number; attempts: number; text: string}> {
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end === -1) end = text.length;
    const a = text.indexOf(' ', start);
    const b = text.indexOf(' ', a + 1);
    const c = text.indexOf(' ', b + 1);
    if (a > start && b > a && c > b && c < end) {
      yield {
        line: Number(text.slice(start, a)),
        code: Number(text.slice(a + 1, b)),
        attempts: Number(text.slice(b + 1, c)),
        text: text.slice(c + 1, end),
      };
    }
    start = end + 1;
  }
}

/** `<runId>.<session>-<n>`: BullMQ job ids may hold neither ':' nor be all digits. */
export function chunkId(runId: string, session: string, chunk: number): string {
  return `${runId}.${session}-${chunk}`;
}

/**
 * A call's own metadata as chunk data, `-bin` values in base64, without the job's fixed entries
 * (`job`: the values the coordinator expanded, templates not among them): those may hold a
 * `${VAR}` secret, and the worker adds its own expansion of them back (`metadataFromData`).
 */
export function metadataToData(metadata: grpc.Metadata, job: Readonly<Record<string, string>>): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [key, values] of Object.entries(metadata.toJSON())) {
    const fixed = job[key];
    if (fixed !== undefined && values.length === 1 && values[0] === fixed) continue;
    out[key] = values.map((v) => (typeof v === 'string' ? v : Buffer.from(v).toString('base64')));
  }
  return out;
}

/**
 * Back from chunk data, on the worker: the job's fixed entries as this worker expanded them
 * (`job`, templates not among them: a record's are in its data), then the record's own.
 */
export function metadataFromData(data: Readonly<Record<string, readonly string[]>>, job: Readonly<Record<string, string>>): grpc.Metadata {
  const metadata = new grpc.Metadata();
  for (const [key, value] of Object.entries(job)) {
    if (key in data) continue;
    metadata.add(key, key.endsWith('-bin') ? Buffer.from(value, 'base64') : value);
  }
  for (const [key, values] of Object.entries(data))
    for (const value of values) metadata.add(key, key.endsWith('-bin') ? Buffer.from(value, 'base64') : value);
  return metadata;
}
