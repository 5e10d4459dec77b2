import * as grpc from '@grpc/grpc-js';
import type {CallOptions, CallOutcome, CancellableCall} from './call.js';
import type {ChannelPool} from './channel.js';
import type {MethodHandle} from '../schema/method-handle.js';
import {CallWriter} from './stream-writer.js';

/** Options of `ClientStreamSender`. */
export interface ClientStreamOptions extends CallOptions {
  /** Records per call. Minimum: 1. */
  readonly batchSize: number;
}

/** A batch not full yet is sent once no record has joined it for this long... */
export const BATCH_IDLE_MS = 2;
/** ...or this long after its first record, whichever comes first. */
export const BATCH_MAX_WAIT_MS = 20;

/** A record waiting for its batch's answer. */
interface Member {
  readonly request: Buffer;
  readonly resolve: (outcome: CallOutcome) => void;
  readonly joinedAt: number;
}

/**
 * Sends records to a client-streaming method in batches: one call per batch (open, send every
 * record of it, half-close, read the one response), and every record of the batch gets the
 * batch's outcome: the same response when it is OK, the same status when it is not (the server
 * contract; see the README). A record that is retried joins a new batch.
 *
 * A batch is sent when it holds `batchSize` records, or once no record has joined it for
 * `BATCH_IDLE_MS` (at most `BATCH_MAX_WAIT_MS` after its first): at the end of the input, or when
 * every slot of `concurrency` is taken by records waiting for answers. Its deadline runs from then,
 * as a unary call's.
 */
export class ClientStreamSender {
  readonly #pool: Pick<ChannelPool, 'pick'>;
  readonly #method: MethodHandle;
  readonly #options: ClientStreamOptions;
  #open: Member[] = [];
  #firstJoinedAt = 0;
  #lastJoinedAt = 0;
  #timer: NodeJS.Timeout | undefined;
  readonly #calls = new Set<Promise<void>>();
  #closed = false;

  constructor(pool: Pick<ChannelPool, 'pick'>, method: MethodHandle, options: ClientStreamOptions) {
    if (!Number.isInteger(options.batchSize) || options.batchSize < 1) {
      throw new TypeError(
        `Expected \`batchSize\` to be an integer from 1 and up, got \`${options.batchSize}\` (${typeof options.batchSize})`,
      );
    }
    this.#pool = pool;
    this.#method = method;
    this.#options = options;
  }

  send(request: Buffer): Promise<CallOutcome> {
    if (this.#closed) return Promise.resolve({ok: false, code: grpc.status.CANCELLED, details: 'the sender is closed', latencyMs: 0});
    return new Promise((resolve) => {
      const now = performance.now();
      if (this.#open.length === 0) this.#firstJoinedAt = now;
      this.#lastJoinedAt = now;
      this.#open.push({request, resolve, joinedAt: now});
      if (this.#open.length >= this.#options.batchSize) this.#flush();
      else if (!this.#timer) this.#timer = setTimeout(() => this.#onTimer(), BATCH_IDLE_MS);
    });
  }

  /** Sends the open batch now, full or not. */
  flush(): void {
    if (this.#open.length > 0) this.#flush();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.flush();
    await Promise.all(this.#calls);
  }

  #onTimer(): void {
    this.#timer = undefined;
    if (this.#open.length === 0) return;
    const now = performance.now();
    const idleFor = now - this.#lastJoinedAt;
    const waitedFor = now - this.#firstJoinedAt;
    if (idleFor >= BATCH_IDLE_MS || waitedFor >= BATCH_MAX_WAIT_MS) this.#flush();
    else this.#timer = setTimeout(() => this.#onTimer(), Math.min(BATCH_IDLE_MS - idleFor, BATCH_MAX_WAIT_MS - waitedFor));
  }

  #flush(): void {
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    const batch = this.#open;
    this.#open = [];
    const call = this.#callBatch(batch);
    this.#calls.add(call);
    void call.finally(() => this.#calls.delete(call));
  }

  #callBatch(batch: readonly Member[]): Promise<void> {
    return new Promise((done) => {
      const options = this.#options;
      const method = this.#method;
      const deadline = options.deadlineMs > 0 ? Date.now() + options.deadlineMs : Infinity;
      const metadata = options.metadata ? options.metadata.clone() : new grpc.Metadata();
      if (options.waitForReady) metadata.setOptions({waitForReady: true});
      const call = this.#pool.pick().getChannel().createCall(method.path, deadline, undefined, null, undefined);
      const handle: CancellableCall = {cancel: () => call.cancelWithStatus(grpc.status.CANCELLED, 'Cancelled on client')};
      options.inFlight?.add(handle);
      let response: Buffer | undefined;
      let messages = 0;
      const settle = (outcome: (member: Member, latencyMs: number) => CallOutcome) => {
        const now = performance.now();
        for (const member of batch) member.resolve(outcome(member, now - member.joinedAt));
      };
      call.start(metadata, {
        onReceiveMetadata() {},
        onReceiveMessage(message: Buffer) {
          messages++;
          if (messages > 1) call.cancelWithStatus(grpc.status.UNIMPLEMENTED, 'Too many responses received');
          else response = message;
        },
        onReceiveStatus(status: grpc.StatusObject) {
          options.inFlight?.delete(handle);
          const size = `(batch of ${batch.length})`;
          if (status.code !== grpc.status.OK) {
            settle((_, latencyMs) => ({ok: false, code: status.code, details: `${status.details} ${size}`, latencyMs}));
          } else if (response === undefined) {
            settle((_, latencyMs) => ({ok: false, code: grpc.status.UNIMPLEMENTED, details: `No message received ${size}`, latencyMs}));
          } else {
            let decoded: unknown;
            try {
              decoded = method.decodeResponse(response);
            } catch (error) {
              const details = `response does not decode as ${method.responseType}: ${(error as Error).message} ${size}`;
              settle((_, latencyMs) => ({ok: false, code: grpc.status.INTERNAL, details, latencyMs}));
              done();
              return;
            }
            settle((_, latencyMs) => ({ok: true, response: decoded, latencyMs}));
          }
          done();
        },
      });
      call.startRead();
      const writer = new CallWriter(call);
      for (const member of batch) writer.write(member.request);
      writer.halfClose();
    });
  }
}
