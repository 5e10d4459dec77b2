import type {Socket} from 'node:net';
import {FRAME_HEADER_BYTES, writeFrameHeader} from './h2-frames.js';

/** Bytes of the buffer frames are written into; a frame larger than that gets a buffer of its own size. */
const OUT_CHUNK = 64 << 10;

/**
 * The write side of an `h2` connection: every frame of an event-loop turn is written into one
 * buffer, and the turn's bytes go out in one `socket.write` from `setImmediate`. Bytes handed to the
 * socket stay its own: the buffer moves on past them, and a new one is taken when it is full.
 */
export class FrameWriter {
  readonly #socket: Socket;
  /** The buffer frames go into now; `frame()` returns where a frame's payload starts in it. */
  out = Buffer.allocUnsafe(OUT_CHUNK);
  #start = 0;
  #pos = 0;
  #chunks: Buffer[] = [];
  #queued = false;
  readonly #flush = () => this.flush();

  constructor(socket: Socket) {
    this.#socket = socket;
  }

  /** Bytes framed this turn, not yet written. */
  get pendingBytes(): number {
    let bytes = this.#pos - this.#start;
    for (const chunk of this.#chunks) bytes += chunk.length;
    return bytes;
  }

  /** Reserves a frame of `length` bytes; returns where its payload goes in `out`. */
  frame(length: number, type: number, flags: number, streamId: number): number {
    this.#reserve(FRAME_HEADER_BYTES + length);
    const at = writeFrameHeader(this.out, this.#pos, length, type, flags, streamId);
    this.#pos = at + length;
    return at;
  }

  raw(bytes: Buffer): void {
    this.#reserve(bytes.length);
    this.#pos += bytes.copy(this.out, this.#pos);
  }

  /** One write for everything framed since the last. */
  flush(): void {
    this.#queued = false;
    const current = this.#pos > this.#start ? this.out.subarray(this.#start, this.#pos) : undefined;
    this.#start = this.#pos;
    let data = current;
    if (this.#chunks.length > 0) {
      if (current) this.#chunks.push(current);
      data = Buffer.concat(this.#chunks);
      this.#chunks = [];
    }
    if (data && !this.#socket.destroyed) this.#socket.write(data);
  }

  #reserve(bytes: number): void {
    if (this.#pos + bytes > this.out.length) {
      if (this.#pos > this.#start) this.#chunks.push(this.out.subarray(this.#start, this.#pos));
      this.out = Buffer.allocUnsafe(Math.max(OUT_CHUNK, bytes));
      this.#start = 0;
      this.#pos = 0;
    }
    if (!this.#queued) {
      this.#queued = true;
      setImmediate(this.#flush);
    }
  }
}

/** `grpc-timeout` for `ms` left: at most 8 digits, in the finest unit that fits. */
export function grpcTimeout(ms: number): string {
  const whole = Math.ceil(ms);
  if (whole < 100_000_000) return `${whole}m`;
  const seconds = Math.ceil(whole / 1000);
  if (seconds < 100_000_000) return `${seconds}S`;
  return `${Math.min(99_999_999, Math.ceil(seconds / 3600))}H`;
}

export function tableSizeUpdateBytes(size: number): number[] {
  const out: number[] = [];
  const mask = 31;
  if (size < mask) return [0x20 | size];
  out.push(0x20 | mask);
  let rest = size - mask;
  while (rest >= 0x80) {
    out.push((rest & 0x7f) | 0x80);
    rest >>>= 7;
  }
  out.push(rest);
  return out;
}

export function timeoutField(timeout: string): Buffer {
  return Buffer.concat([
    Buffer.from([0, 12]),
    Buffer.from('grpc-timeout', 'latin1'),
    Buffer.from([timeout.length]),
    Buffer.from(timeout, 'latin1'),
  ]);
}
