import {callServerStream, callUnary, DEFAULT_MAX_REPLIES, type CallOptions, type CallOutcome, type PerCallOptions} from './call.js';
import type {ChannelPool} from './channel.js';
import {callUnaryH2} from './h2-transport.js';
import type {MethodHandle} from '../schema/method-handle.js';
import {BidiSender} from './stream-bidi.js';
import {ClientStreamSender} from './stream-client.js';

/**
 * Sends records one at a time, whatever the method's kind: the one thing the run engine needs.
 * `send` resolves with the record's outcome (as `callUnary`: a gRPC status is an outcome, it
 * never rejects); the engine's retry loop calls it again for another attempt.
 */
export interface RecordSender {
  /**
   * Sends one encoded request; resolves with its outcome. `perCall` (a record's own metadata and
   * deadline) applies to unary calls only: a stream's metadata is sent once for all its records.
   */
  send(request: Buffer, perCall?: PerCallOptions): Promise<CallOutcome>;
  /**
   * Ends the sender's streams once their records are answered (half-close, then wait for the
   * server's status); streams still open after `graceMs` are cancelled. Call it after the last
   * `send` has settled. Idempotent. @default graceMs 2000
   */
  close(graceMs?: number): Promise<void>;
}

/** Options of `createSender`: a call's options, plus the streaming keys of the job. */
export interface SenderOptions extends CallOptions {
  /** The job's `concurrency`: the defaults of `streams` and `batchSize` come from it. */
  readonly concurrency: number;
  /** Bidi only: streams to spread records over. Minimum: 1. @default defaultStreams(concurrency) */
  readonly streams?: number | undefined;
  /** Client-streaming only: records per call. Minimum: 1. @default defaultBatchSize(concurrency) */
  readonly batchSize?: number | undefined;
  /** Server-streaming only: most replies kept per record. @default DEFAULT_MAX_REPLIES */
  readonly maxReplies?: number | undefined;
}

/**
 * Bidi streams when `streams` is not set: as many as records in flight, so each stream carries one
 * record at a time. That is the one default that keeps the unary throughput with every server,
 * including the common one that handles a stream's requests one after the other; it still saves
 * the per-call work (a new HTTP/2 stream, headers, trailers). A server that reads ahead and answers
 * in order is as fast with a few streams (`streams: 4`): see the README and bench/README.md.
 */
export function defaultStreams(concurrency: number): number {
  return concurrency;
}

/** Records per client-streaming call when `batchSize` is not set. */
export const DEFAULT_BATCH_SIZE = 100;

export function defaultBatchSize(concurrency: number): number {
  return Math.min(DEFAULT_BATCH_SIZE, concurrency);
}

/**
 * The sender for the method's kind: one unary call per record, records as messages over bidi
 * streams, records in client-streaming batches, or one server-streaming call per record.
 */
export function createSender(pool: ChannelPool, method: MethodHandle, options: SenderOptions): RecordSender {
  switch (method.kind) {
    case 'unary':
      if (pool.transport === 'h2')
        return {send: (request, perCall) => callUnaryH2(pool.pickH2(), method, request, options, perCall), close: () => Promise.resolve()};
      return {send: (request, perCall) => callUnary(pool.pick(), method, request, options, perCall), close: () => Promise.resolve()};
    case 'server-streaming':
      return {
        send: (request, perCall) =>
          callServerStream(pool.pick(), method, request, {...options, maxReplies: options.maxReplies ?? DEFAULT_MAX_REPLIES}, perCall),
        close: () => Promise.resolve(),
      };
    case 'bidi':
      return new BidiSender(pool, method, {...options, streams: options.streams ?? defaultStreams(options.concurrency)});
    case 'client-streaming':
      return new ClientStreamSender(pool, method, {...options, batchSize: options.batchSize ?? defaultBatchSize(options.concurrency)});
    default:
      throw new TypeError(`Expected a unary, client-streaming or bidi method, got \`${method.name}\` (${method.kind})`);
  }
}
