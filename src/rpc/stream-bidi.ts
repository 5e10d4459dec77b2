import * as grpc from '@grpc/grpc-js';
import type {CallOptions, CallOutcome, CancellableCall} from './call.js';
import type {ChannelPool} from './channel.js';
import type {MethodHandle} from '../schema/method-handle.js';
import {CallWriter, type ChannelCall} from './stream-writer.js';

/** Options of `BidiSender`. */
export interface BidiOptions extends CallOptions {
  /** Streams to spread records over; each record goes on the stream with the fewest unanswered. Minimum: 1. */
  readonly streams: number;
  /**
   * How long a stream takes new records after it opens; then it is half-closed (the server ends
   * it once it has answered) and the next record opens a fresh one. Its gRPC deadline is this
   * plus `deadlineMs`, so every record sent on it has its full deadline. Ignored when `deadlineMs`
   * is 0 (streams then have no deadline and live until `close`).
   * @default max(deadlineMs, 10_000)
   */
  readonly rotateAfterMs?: number;
}

/** Shortest time a stream takes records for, by default: a stream costs about one unary call to open. */
export const MIN_ROTATE_AFTER_MS = 10_000;

/** A record sent and not answered yet. */
interface Pending {
  readonly resolve: (outcome: CallOutcome) => void;
  readonly sentAt: number;
}

/**
 * Sends records as messages over a few long-lived bidi streams: one response per request, matched
 * in order on each stream (the server contract; see the README). Each `send` picks the open
 * stream with the fewest records unanswered, so with `streams` equal to the records in flight,
 * each stream carries one at a time.
 *
 * - **Deadlines.** A record's answer must come within `deadlineMs` of its send. When the oldest
 *   record of a stream is late, answers being in order, the stream is cancelled: that record and
 *   every record behind it end with DEADLINE_EXCEEDED. Streams are replaced every `rotateAfterMs`.
 * - **A stream that breaks** (the server resets it or ends it with an error, the connection
 *   drops) ends each of its unanswered records with the stream's status, as a unary call in
 *   flight gets its call's status: the run's retry policy decides, per record, whether it goes out
 *   again on another stream. A stream the server ends with OK before answering everything leaves
 *   its unanswered records UNAVAILABLE. No record is left without an outcome, none is re-sent
 *   behind the retry policy's back.
 * - A response that does not decode fails that record only (INTERNAL); a response with no record
 *   waiting for it means answers and records are out of step: the stream is cancelled (INTERNAL).
 */
export class BidiSender {
  readonly #pool: Pick<ChannelPool, 'pick'>;
  readonly #method: MethodHandle;
  readonly #options: BidiOptions;
  readonly #rotateAfterMs: number;
  /** One slot per stream; a slot's stream is replaced when it ends or stops taking records. */
  readonly #slots: (BidiStream | undefined)[];
  /** Every stream not ended yet, the draining ones too. */
  readonly #live = new Set<BidiStream>();
  #closing: Promise<void> | undefined;

  constructor(pool: Pick<ChannelPool, 'pick'>, method: MethodHandle, options: BidiOptions) {
    if (!Number.isInteger(options.streams) || options.streams < 1) {
      throw new TypeError(`Expected \`streams\` to be an integer from 1 and up, got \`${options.streams}\` (${typeof options.streams})`);
    }
    this.#pool = pool;
    this.#method = method;
    this.#options = options;
    this.#rotateAfterMs = options.deadlineMs > 0 ? (options.rotateAfterMs ?? Math.max(options.deadlineMs, MIN_ROTATE_AFTER_MS)) : Infinity;
    this.#slots = new Array<BidiStream | undefined>(options.streams).fill(undefined);
  }

  /** Streams open now (taking records or draining). */
  get openStreams(): number {
    return this.#live.size;
  }

  send(request: Buffer): Promise<CallOutcome> {
    if (this.#closing) return Promise.resolve(closedOutcome());
    const now = performance.now();
    let best = -1;
    let bestLoad = Infinity;
    for (let index = 0; index < this.#slots.length; index++) {
      const stream = this.#slots[index];
      const load = stream?.isTakingRecords(now) ? stream.unanswered : 0;
      if (load < bestLoad) {
        best = index;
        bestLoad = load;
        if (load === 0) break;
      }
    }
    let stream = this.#slots[best];
    if (!stream?.isTakingRecords(now)) {
      stream?.halfClose();
      stream = this.#open(now);
      this.#slots[best] = stream;
    }
    return stream.send(request, now);
  }

  close(graceMs = 2000): Promise<void> {
    return (this.#closing ??= (async () => {
      for (const stream of this.#live) stream.halfClose();
      if (this.#live.size === 0) return;
      const ended = Promise.all([...this.#live].map((stream) => stream.ended));
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
      await Promise.race([ended, late]);
      clearTimeout(timer);
      for (const stream of this.#live) stream.cancel(grpc.status.CANCELLED, 'the run ended and the stream did not');
      await ended;
    })());
  }

  #open(now: number): BidiStream {
    const stream = new BidiStream(this.#pool.pick(), this.#method, this.#options, now, now + this.#rotateAfterMs, () =>
      this.#live.delete(stream),
    );
    this.#live.add(stream);
    return stream;
  }
}

function closedOutcome(): CallOutcome {
  return {ok: false, code: grpc.status.CANCELLED, details: 'the sender is closed', latencyMs: 0};
}

/** One bidi call and the records it has not answered, oldest first. */
class BidiStream implements CancellableCall {
  readonly ended: Promise<void>;
  readonly #call: ChannelCall;
  readonly #writer: CallWriter;
  readonly #method: MethodHandle;
  readonly #deadlineMs: number;
  readonly #takeUntil: number;
  readonly #inFlight: Set<CancellableCall> | undefined;
  /** FIFO: `#pending[#head]` is the oldest record unanswered. */
  #pending: Pending[] = [];
  #head = 0;
  #halfClosed = false;
  #done = false;
  #timer: NodeJS.Timeout | undefined;
  /** Why the client cancelled the stream, when it did: given to the record that was late. */
  #lateDetails: string | undefined;

  constructor(client: grpc.Client, method: MethodHandle, options: BidiOptions, now: number, takeUntil: number, onEnd: () => void) {
    this.#method = method;
    this.#deadlineMs = options.deadlineMs;
    this.#takeUntil = takeUntil;
    this.#inFlight = options.inFlight;
    // The stream's gRPC deadline leaves the last record it takes its full deadline.
    const deadline = options.deadlineMs > 0 ? Date.now() + (takeUntil - now) + options.deadlineMs : Infinity;
    const metadata = options.metadata ? options.metadata.clone() : new grpc.Metadata();
    if (options.waitForReady) metadata.setOptions({waitForReady: true});
    this.#call = client.getChannel().createCall(method.path, deadline, undefined, null, undefined);
    this.#writer = new CallWriter(this.#call);
    let ended!: () => void;
    this.ended = new Promise<void>((resolve) => (ended = resolve));
    this.#inFlight?.add(this);
    this.#call.start(metadata, {
      onReceiveMetadata: () => {},
      onReceiveMessage: (message: Buffer) => {
        this.#answer(message);
        this.#call.startRead();
      },
      onReceiveStatus: (status: grpc.StatusObject) => {
        this.#end(status);
        this.#inFlight?.delete(this);
        onEnd();
        ended();
      },
    });
    this.#call.startRead();
  }

  get unanswered(): number {
    return this.#pending.length - this.#head;
  }

  isTakingRecords(now: number): boolean {
    return !this.#done && !this.#halfClosed && now < this.#takeUntil;
  }

  send(request: Buffer, now: number): Promise<CallOutcome> {
    return new Promise((resolve) => {
      this.#pending.push({resolve, sentAt: now});
      this.#writer.write(request);
      if (this.#deadlineMs > 0 && !this.#timer) this.#armTimer(now);
    });
  }

  /** No more records: the server ends the stream once it has answered them. Idempotent. */
  halfClose(): void {
    if (this.#halfClosed || this.#done) return;
    this.#halfClosed = true;
    this.#writer.halfClose();
  }

  cancel(code: grpc.status = grpc.status.CANCELLED, details = 'Cancelled on client'): void {
    if (!this.#done) this.#call.cancelWithStatus(code, details);
  }

  #answer(message: Buffer): void {
    if (this.#head === this.#pending.length) {
      this.cancel(
        grpc.status.INTERNAL,
        'the server sent more responses than requests on a bidi stream: answers cannot be matched to records (grpc-batch expects one response per request, in order)',
      );
      return;
    }
    const record = this.#pending[this.#head]!;
    this.#pending[this.#head++] = undefined as unknown as Pending;
    if (this.#head > 1024 && this.#head * 2 > this.#pending.length) {
      this.#pending = this.#pending.slice(this.#head);
      this.#head = 0;
    }
    const latencyMs = performance.now() - record.sentAt;
    let response: unknown;
    try {
      response = this.#method.decodeResponse(message);
    } catch (error) {
      record.resolve({
        ok: false,
        code: grpc.status.INTERNAL,
        details: `response does not decode as ${this.#method.responseType}: ${(error as Error).message}`,
        latencyMs,
      });
      return;
    }
    record.resolve({ok: true, response, latencyMs});
  }

  #end(status: grpc.StatusObject): void {
    this.#done = true;
    if (this.#timer) clearTimeout(this.#timer);
    const now = performance.now();
    const late = this.#lateDetails;
    for (let index = this.#head; index < this.#pending.length; index++) {
      const record = this.#pending[index]!;
      const latencyMs = now - record.sentAt;
      if (status.code === grpc.status.OK) {
        record.resolve({
          ok: false,
          code: grpc.status.UNAVAILABLE,
          details: 'the server ended the stream (OK) before answering this record',
          latencyMs,
        });
      } else if (late !== undefined) {
        record.resolve({
          ok: false,
          code: status.code,
          details: index === this.#head ? late : `${late}, on a record sent before this one on its stream (answers come in order)`,
          latencyMs,
        });
      } else {
        record.resolve({
          ok: false,
          code: status.code,
          details: `${status.details} (the stream ended before this record's answer)`,
          latencyMs,
        });
      }
    }
    this.#pending = [];
    this.#head = 0;
  }

  /** One timer per stream, for its oldest record: answers come in order, so only it can be late first. */
  #armTimer(now: number): void {
    const oldest = this.#pending[this.#head];
    if (!oldest || this.#done) {
      this.#timer = undefined;
      return;
    }
    this.#timer = setTimeout(() => this.#checkLate(), Math.max(0, oldest.sentAt + this.#deadlineMs - now));
  }

  #checkLate(): void {
    this.#timer = undefined;
    const now = performance.now();
    const oldest = this.#pending[this.#head];
    if (!oldest) return;
    if (now - oldest.sentAt >= this.#deadlineMs) {
      this.#lateDetails = `Deadline exceeded: no answer within ${this.#deadlineMs}ms`;
      this.cancel(grpc.status.DEADLINE_EXCEEDED, this.#lateDetails);
      return;
    }
    this.#armTimer(now);
  }
}
