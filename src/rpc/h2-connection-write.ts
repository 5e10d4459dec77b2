import {Flag, FrameType} from './h2-frames.js';
import type {H2Stream} from './h2-stream.js';
import {grpcTimeout, tableSizeUpdateBytes, timeoutField, type FrameWriter} from './h2-writer.js';

/**
 * The request side of an `h2` stream, written straight into the connection's frame buffer: the
 * header block (with `grpc-timeout` and a pending table size update), then the body as DATA with
 * gRPC's 5-byte prefix, as far as the windows allow; and the small control frames. No buffer per
 * call on the usual path.
 */

/** Bytes of a `grpc-timeout` field (literal without indexing, new name) besides its value. */
const TIMEOUT_FIELD_BYTES = 15;
const NO_PREFIX: readonly number[] = [];

/** Writes the stream's HEADERS (and CONTINUATIONs, for a block over `maxFrame`). */
export function writeRequestHeaders(writer: FrameWriter, stream: H2Stream, maxFrame: number, tableSizeUpdate: number | undefined): void {
  const head = stream.head;
  let timeout = '';
  if (stream.deadline !== Infinity) timeout = grpcTimeout(Math.max(1, stream.deadline - Date.now()));
  const prefix = tableSizeUpdate === undefined ? NO_PREFIX : tableSizeUpdateBytes(tableSizeUpdate);
  const length = prefix.length + head.length + (timeout === '' ? 0 : TIMEOUT_FIELD_BYTES + timeout.length);
  if (length > maxFrame) {
    // Rare (very large metadata): one buffer, cut into HEADERS + CONTINUATION.
    const block = Buffer.concat([Buffer.from(prefix), head, timeout === '' ? Buffer.alloc(0) : timeoutField(timeout)]);
    for (let at = 0; at < block.length; at += maxFrame) {
      const part = block.subarray(at, at + maxFrame);
      const last = at + maxFrame >= block.length;
      const start = writer.frame(
        part.length,
        at === 0 ? FrameType.HEADERS : FrameType.CONTINUATION,
        last ? Flag.END_HEADERS : 0,
        stream.id,
      );
      part.copy(writer.out, start);
    }
    return;
  }
  let at = writer.frame(length, FrameType.HEADERS, Flag.END_HEADERS, stream.id);
  const out = writer.out;
  for (const byte of prefix) out[at++] = byte;
  at += head.copy(out, at);
  if (timeout !== '') {
    out[at++] = 0;
    out[at++] = 12;
    at += out.write('grpc-timeout', at, 'latin1');
    out[at++] = timeout.length;
    out.write(timeout, at, 'latin1');
  }
}

/**
 * Writes as much of the stream's body (prefix + message) as the stream window, `connectionWindow`
 * and `maxFrame` allow; returns the bytes written, which the caller takes off its connection window.
 */
export function writeBody(writer: FrameWriter, stream: H2Stream, connectionWindow: number, maxFrame: number): number {
  const message = stream.message;
  const total = message.length + 5;
  let written = 0;
  while (stream.sent < total) {
    const n = Math.min(total - stream.sent, stream.sendWindow, connectionWindow - written, maxFrame);
    if (n <= 0) break;
    const end = stream.sent + n === total;
    let at = writer.frame(n, FrameType.DATA, end ? Flag.END_STREAM : 0, stream.id);
    const out = writer.out;
    let from = stream.sent;
    let left = n;
    while (from < 5 && left > 0) {
      out[at++] = from === 0 ? 0 : (message.length >>> (8 * (4 - from))) & 0xff;
      from++;
      left--;
    }
    if (left > 0) message.copy(out, at, from - 5, from - 5 + left);
    stream.sent += n;
    stream.sendWindow -= n;
    written += n;
  }
  return written;
}

export function writeRstStream(writer: FrameWriter, streamId: number, code: number): void {
  const at = writer.frame(4, FrameType.RST_STREAM, 0, streamId);
  writer.out.writeUInt32BE(code, at);
}

export function writeWindowUpdate(writer: FrameWriter, streamId: number, increment: number): void {
  const at = writer.frame(4, FrameType.WINDOW_UPDATE, 0, streamId);
  writer.out.writeUInt32BE(increment, at);
}

/** GOAWAY with `code` and up to 200 bytes of `message` as debug data; no stream of the server's was accepted. */
export function writeGoaway(writer: FrameWriter, code: number, message: string): void {
  const debug = Buffer.from(message.slice(0, 200), 'latin1');
  const at = writer.frame(8 + debug.length, FrameType.GOAWAY, 0, 0);
  writer.out.writeUInt32BE(0, at);
  writer.out.writeUInt32BE(code, at + 4);
  debug.copy(writer.out, at + 8);
}
