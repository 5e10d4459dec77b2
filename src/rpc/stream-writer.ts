import type * as grpc from '@grpc/grpc-js';

/** A call as `Channel#createCall` makes it. */
export type ChannelCall = ReturnType<grpc.Channel['createCall']>;

/**
 * Writes messages to a streaming call one at a time: grpc-js's call layers take the next message
 * only once the last one's write callback has run (a call still resolving keeps one pending
 * message, and a second one would replace it), as its own `ClientWritableStream` does. Messages
 * written meanwhile wait here, in order; a half-close waits for them.
 */
export class CallWriter {
  readonly #call: ChannelCall;
  #queue: Buffer[] = [];
  #head = 0;
  #writing = false;
  #halfClosePending = false;
  readonly #context = {callback: () => this.#onWritten()};

  constructor(call: ChannelCall) {
    this.#call = call;
  }

  write(message: Buffer): void {
    if (this.#writing) {
      this.#queue.push(message);
      return;
    }
    this.#writing = true;
    this.#call.sendMessageWithContext(this.#context, message);
  }

  /** Half-closes once every message written is sent. */
  halfClose(): void {
    if (this.#writing) this.#halfClosePending = true;
    else this.#call.halfClose();
  }

  #onWritten(): void {
    if (this.#head < this.#queue.length) {
      const message = this.#queue[this.#head]!;
      this.#queue[this.#head++] = undefined as unknown as Buffer;
      if (this.#head === this.#queue.length) {
        this.#queue = [];
        this.#head = 0;
      }
      this.#call.sendMessageWithContext(this.#context, message);
      return;
    }
    this.#writing = false;
    if (this.#halfClosePending) {
      this.#halfClosePending = false;
      this.#call.halfClose();
    }
  }
}
