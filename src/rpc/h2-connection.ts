import type {Socket} from 'node:net';
import {
  CONNECTION_PREFACE, DEFAULT_MAX_FRAME_SIZE, Flag, FrameParser, framePayload, FrameType, H2_ERROR,
  H2ConnectionError, h2ErrorName, MAX_WINDOW, Setting,
} from './h2-frames.js';
import {DEFAULT_TABLE_SIZE, HpackDecoder, type HeaderFields} from './hpack.js';
import type {H2ConnectionOptions, H2ConnectionOwner, H2Stream} from './h2-stream.js';
import {FrameWriter, grpcTimeout, tableSizeUpdateBytes, timeoutField} from './h2-writer.js';

/**
 * One HTTP/2 client connection (RFC 9113) for gRPC unary calls: the preface and SETTINGS (streams
 * open only once the server's SETTINGS came), acks of SETTINGS and PING, flow control both ways,
 * MAX_CONCURRENT_STREAMS (streams over it wait here), RST_STREAM, GOAWAY (streams above its last
 * stream id are handed back unprocessed, to be sent again elsewhere), keepalive pings. Every frame
 * of an event-loop turn goes out in one `socket.write`.
 */

/** Our receive windows: 1 MiB per stream, 16 MiB for the connection (the spec's 64 KiB would cap a reply at one round trip per 64 KiB). */
export const STREAM_WINDOW = 1 << 20;
export const CONNECTION_WINDOW = 16 << 20;
/** Decoded response header lists above this fail their call (advertised as SETTINGS_MAX_HEADER_LIST_SIZE). */
export const MAX_HEADER_LIST_SIZE = 64 << 10;
/** A header block (HEADERS + CONTINUATION) longer than this, or in more frames, ends the connection. */
const MAX_HEADER_BLOCK_BYTES = 256 << 10;
const MAX_CONTINUATIONS = 64;
/** Acks the peer does not read: past this much unsent, the connection ends (a PING or SETTINGS flood). */
const MAX_UNSENT_BYTES = 16 << 20;
const MAX_STREAM_ID = 2 ** 31 - 1;

const OUR_SETTINGS: readonly [number, number][] = [
  [Setting.ENABLE_PUSH, 0],
  [Setting.INITIAL_WINDOW_SIZE, STREAM_WINDOW],
  [Setting.MAX_HEADER_LIST_SIZE, MAX_HEADER_LIST_SIZE],
];

export class H2Connection {
  readonly #socket: Socket;
  readonly #owner: H2ConnectionOwner;
  readonly #options: H2ConnectionOptions;
  readonly #parser = new FrameParser(DEFAULT_MAX_FRAME_SIZE);
  readonly #decoder = new HpackDecoder(DEFAULT_TABLE_SIZE);
  readonly #streams = new Map<number, H2Stream>();
  /** Streams over MAX_CONCURRENT_STREAMS, in arrival order. */
  #queue: H2Stream[] = [];
  #blocked: H2Stream[] = [];
  #nextId = 1;
  #ready = false;
  #draining = false;
  #closed = false;
  /** Peer settings. */
  #maxStreams = Infinity;
  #initialWindow = 65_535;
  #maxFrame = DEFAULT_MAX_FRAME_SIZE;
  /** A table size the peer lowered its SETTINGS_HEADER_TABLE_SIZE to: announced in the next block. */
  #tableSizeUpdate: number | undefined;
  #sendWindow = 65_535;
  #recvWindow = CONNECTION_WINDOW;
  /** A header block in CONTINUATION frames. */
  #continuation: {streamId: number; endStream: boolean; parts: Buffer[]; bytes: number; frames: number} | undefined;
  readonly #writer: FrameWriter;
  #keepaliveTimer: NodeJS.Timeout | undefined;
  #pingTimer: NodeJS.Timeout | undefined;

  constructor(socket: Socket, owner: H2ConnectionOwner, options: H2ConnectionOptions) {
    this.#socket = socket;
    this.#owner = owner;
    this.#options = options;
    this.#writer = new FrameWriter(socket);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#onChunk(chunk));
    socket.on('error', (error) => this.#onSocketClosed(error.message));
    socket.on('close', () => this.#onSocketClosed(undefined));
    socket.on('end', () => this.#onSocketClosed('the server closed the connection'));
    // Preface, SETTINGS, and the connection window raised from 64 KiB.
    this.#writer.raw(CONNECTION_PREFACE);
    const settings = this.#writer.frame(OUR_SETTINGS.length * 6, FrameType.SETTINGS, 0, 0);
    let at = settings;
    for (const [id, value] of OUR_SETTINGS) {
      this.#writer.out.writeUInt16BE(id, at);
      this.#writer.out.writeUInt32BE(value, at + 2);
      at += 6;
    }
    this.#windowUpdate(0, CONNECTION_WINDOW - 65_535);
  }

  /** The server's SETTINGS came and no GOAWAY: new streams may go here. */
  get isReady(): boolean {
    return this.#ready && !this.#draining && !this.#closed;
  }

  /** Streams open or waiting for a slot here. */
  get load(): number {
    return this.#streams.size + this.#queue.length;
  }

  /** Opens the stream now, or when a MAX_CONCURRENT_STREAMS slot frees. */
  start(stream: H2Stream): void {
    if (this.#streams.size < this.#maxStreams && this.#queue.length === 0) this.#open(stream);
    else this.#queue.push(stream);
  }

  /** Ends a stream of ours (cancel, deadline, a reply refused): RST_STREAM if it is open. Its callbacks are not called again. */
  reset(stream: H2Stream, code: number = H2_ERROR.CANCEL): void {
    if (stream.id !== 0 && this.#streams.get(stream.id) === stream) {
      this.#streams.delete(stream.id);
      this.#rstStream(stream.id, code);
      this.#afterStreamEnd();
      return;
    }
    const at = this.#queue.indexOf(stream);
    if (at >= 0) this.#queue.splice(at, 1);
  }

  /** Closes the connection at once: streams are lost, those waiting handed back. Idempotent. */
  close(reason = 'the channel was closed'): void {
    if (this.#closed) return;
    this.#goaway(H2_ERROR.NO_ERROR, '');
    this.#writer.flush();
    this.#shutdown(reason, false);
    this.#socket.end();
    this.#socket.destroySoon?.();
  }

  #open(stream: H2Stream): void {
    if (this.#nextId > MAX_STREAM_ID) {
      // Stream ids used up: this connection drains; the channel opens a new one.
      this.#startDraining('stream ids used up');
      stream.onUnprocessed('stream ids used up');
      return;
    }
    const id = this.#nextId;
    this.#nextId += 2;
    stream.id = id;
    stream.sendWindow = this.#initialWindow;
    stream.recvWindow = STREAM_WINDOW;
    stream.blocked = false;
    stream.sent = 0;
    this.#streams.set(id, stream);
    this.#writeHeaders(stream);
    this.#sendBody(stream);
    if (this.#nextId > MAX_STREAM_ID) this.#startDraining('stream ids used up');
  }

  #writeHeaders(stream: H2Stream): void {
    const head = stream.head;
    let timeout = '';
    if (stream.deadline !== Infinity) timeout = grpcTimeout(Math.max(1, stream.deadline - Date.now()));
    const update = this.#tableSizeUpdate;
    this.#tableSizeUpdate = undefined;
    const prefix = update === undefined ? [] : tableSizeUpdateBytes(update);
    const length = prefix.length + head.length + (timeout === '' ? 0 : 15 + timeout.length);
    if (length > this.#maxFrame) {
      // Rare (very large metadata): one buffer, cut into HEADERS + CONTINUATION.
      const block = Buffer.concat([Buffer.from(prefix), head, timeout === '' ? Buffer.alloc(0) : timeoutField(timeout)]);
      for (let at = 0; at < block.length; at += this.#maxFrame) {
        const part = block.subarray(at, at + this.#maxFrame);
        const last = at + this.#maxFrame >= block.length;
        const start = this.#writer.frame(part.length, at === 0 ? FrameType.HEADERS : FrameType.CONTINUATION, last ? Flag.END_HEADERS : 0, stream.id);
        part.copy(this.#writer.out, start);
      }
      return;
    }
    let at = this.#writer.frame(length, FrameType.HEADERS, Flag.END_HEADERS, stream.id);
    const out = this.#writer.out;
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

  /** Sends as much of the stream's body as the windows allow. */
  #sendBody(stream: H2Stream): void {
    const message = stream.message;
    const total = message.length + 5;
    while (stream.sent < total) {
      const n = Math.min(total - stream.sent, stream.sendWindow, this.#sendWindow, this.#maxFrame);
      if (n <= 0) {
        if (!stream.blocked) {
          stream.blocked = true;
          this.#blocked.push(stream);
        }
        return;
      }
      const end = stream.sent + n === total;
      let at = this.#writer.frame(n, FrameType.DATA, end ? Flag.END_STREAM : 0, stream.id);
      const out = this.#writer.out;
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
      this.#sendWindow -= n;
    }
  }

  #resumeBlocked(): void {
    if (this.#blocked.length === 0) return;
    const blocked = this.#blocked;
    this.#blocked = [];
    for (const stream of blocked) {
      stream.blocked = false;
      if (this.#streams.get(stream.id) === stream) this.#sendBody(stream);
    }
  }

  #onChunk(chunk: Buffer): void {
    if (this.#closed) return;
    try {
      this.#parser.push(chunk, this.#onFrame);
    } catch (error) {
      if (error instanceof H2ConnectionError) this.#connectionError(error);
      else throw error;
    }
  }

  readonly #onFrame = (type: number, flags: number, streamId: number, payload: Buffer): void => {
    if (this.#closed) return;
    if (this.#continuation && type !== FrameType.CONTINUATION) throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, `${type} frame in the middle of a header block (CONTINUATION expected)`);
    if (!this.#ready && type !== FrameType.SETTINGS) throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'the server preface did not start with SETTINGS');
    switch (type) {
      case FrameType.DATA:
        return this.#onData(flags, streamId, payload);
      case FrameType.HEADERS:
        return this.#onHeadersFrame(flags, streamId, payload);
      case FrameType.CONTINUATION:
        return this.#onContinuation(flags, streamId, payload);
      case FrameType.RST_STREAM:
        return this.#onRstStream(streamId, payload.readUInt32BE(0));
      case FrameType.SETTINGS:
        return this.#onSettings(flags, payload);
      case FrameType.PUSH_PROMISE:
        throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'PUSH_PROMISE with SETTINGS_ENABLE_PUSH 0');
      case FrameType.PING:
        return this.#onPing(flags, payload);
      case FrameType.GOAWAY:
        return this.#onGoaway(payload);
      case FrameType.WINDOW_UPDATE:
        return this.#onWindowUpdate(streamId, payload.readUInt32BE(0) & 0x7fffffff);
      default:
        return; // PRIORITY and unknown types are ignored (RFC 9113 sections 5.3.2 and 5.5)
    }
  };

  #onData(flags: number, streamId: number, payload: Buffer): void {
    const length = payload.length;
    this.#recvWindow -= length;
    if (this.#recvWindow < 0) throw new H2ConnectionError(H2_ERROR.FLOW_CONTROL_ERROR, 'DATA beyond the connection window');
    if (this.#recvWindow <= CONNECTION_WINDOW / 2) {
      this.#windowUpdate(0, CONNECTION_WINDOW - this.#recvWindow);
      this.#recvWindow = CONNECTION_WINDOW;
    }
    const stream = this.#streams.get(streamId);
    if (!stream) return this.#checkClosedStream(streamId, 'DATA');
    const data = framePayload(FrameType.DATA, flags, payload);
    const end = (flags & Flag.END_STREAM) !== 0;
    stream.recvWindow -= length;
    if (stream.recvWindow < 0) {
      this.reset(stream, H2_ERROR.FLOW_CONTROL_ERROR);
      stream.onLost('the server sent DATA beyond the stream window (FLOW_CONTROL_ERROR)', true);
      return;
    }
    if (!end && stream.recvWindow <= STREAM_WINDOW / 2) {
      this.#windowUpdate(streamId, STREAM_WINDOW - stream.recvWindow);
      stream.recvWindow = STREAM_WINDOW;
    }
    if (end) this.#endStream(stream);
    stream.onData(data, end);
  }

  #onHeadersFrame(flags: number, streamId: number, payload: Buffer): void {
    const fragment = framePayload(FrameType.HEADERS, flags, payload);
    const endStream = (flags & Flag.END_STREAM) !== 0;
    if (flags & Flag.END_HEADERS) return this.#onHeaderBlock(streamId, endStream, fragment);
    this.#continuation = {streamId, endStream, parts: [Buffer.from(fragment)], bytes: fragment.length, frames: 1};
  }

  #onContinuation(flags: number, streamId: number, payload: Buffer): void {
    const pending = this.#continuation;
    if (!pending || pending.streamId !== streamId) throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'CONTINUATION without a header block in progress on its stream');
    pending.bytes += payload.length;
    pending.frames++;
    if (pending.bytes > MAX_HEADER_BLOCK_BYTES || pending.frames > MAX_CONTINUATIONS) {
      throw new H2ConnectionError(H2_ERROR.ENHANCE_YOUR_CALM, `a header block over ${MAX_HEADER_BLOCK_BYTES} bytes or ${MAX_CONTINUATIONS} frames`);
    }
    pending.parts.push(Buffer.from(payload));
    if (flags & Flag.END_HEADERS) {
      this.#continuation = undefined;
      this.#onHeaderBlock(streamId, pending.endStream, Buffer.concat(pending.parts));
    }
  }

  #onHeaderBlock(streamId: number, endStream: boolean, block: Buffer): void {
    // Decoded even for a stream we reset: the table must stay in step with the server's.
    const fields = this.#decoder.decode(block, MAX_HEADER_LIST_SIZE);
    const stream = this.#streams.get(streamId);
    if (!stream) return this.#checkClosedStream(streamId, 'HEADERS');
    if (endStream) this.#endStream(stream);
    stream.onHeaders(fields, endStream);
  }

  #onRstStream(streamId: number, code: number): void {
    const stream = this.#streams.get(streamId);
    if (!stream) return this.#checkClosedStream(streamId, 'RST_STREAM');
    this.#streams.delete(streamId);
    this.#afterStreamEnd();
    if (code === H2_ERROR.REFUSED_STREAM) stream.onUnprocessed('the server refused the stream (REFUSED_STREAM)');
    else stream.onReset(code);
  }

  #onSettings(flags: number, payload: Buffer): void {
    if (flags & Flag.ACK) return;
    for (let at = 0; at < payload.length; at += 6) {
      const id = payload.readUInt16BE(at);
      const value = payload.readUInt32BE(at + 2);
      switch (id) {
        case Setting.HEADER_TABLE_SIZE:
          // Our encoder keeps no table; a lowered limit is still announced, as the decoder may expect it.
          if (value < DEFAULT_TABLE_SIZE) this.#tableSizeUpdate = value;
          break;
        case Setting.ENABLE_PUSH:
          if (value > 1) throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, `SETTINGS_ENABLE_PUSH ${value}`);
          break;
        case Setting.MAX_CONCURRENT_STREAMS:
          this.#maxStreams = value;
          break;
        case Setting.INITIAL_WINDOW_SIZE: {
          if (value > MAX_WINDOW) throw new H2ConnectionError(H2_ERROR.FLOW_CONTROL_ERROR, `SETTINGS_INITIAL_WINDOW_SIZE ${value}`);
          const delta = value - this.#initialWindow;
          this.#initialWindow = value;
          for (const stream of this.#streams.values()) {
            stream.sendWindow += delta;
            if (stream.sendWindow > MAX_WINDOW) throw new H2ConnectionError(H2_ERROR.FLOW_CONTROL_ERROR, 'a stream window above 2^31-1');
          }
          break;
        }
        case Setting.MAX_FRAME_SIZE:
          if (value < DEFAULT_MAX_FRAME_SIZE || value > 16_777_215) throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, `SETTINGS_MAX_FRAME_SIZE ${value}`);
          this.#maxFrame = value;
          break;
        default:
          break; // unknown settings are ignored (RFC 9113 section 6.5.2)
      }
    }
    this.#writer.frame(0, FrameType.SETTINGS, Flag.ACK, 0);
    this.#checkFlood();
    if (!this.#ready) {
      this.#ready = true;
      this.#startKeepalive();
      this.#owner.onReady(this);
    }
    this.#drainQueue();
    this.#resumeBlocked();
  }

  #onPing(flags: number, payload: Buffer): void {
    if (flags & Flag.ACK) {
      if (this.#pingTimer) clearTimeout(this.#pingTimer);
      this.#pingTimer = undefined;
      return;
    }
    const at = this.#writer.frame(8, FrameType.PING, Flag.ACK, 0);
    payload.copy(this.#writer.out, at);
    this.#checkFlood();
  }

  #onGoaway(payload: Buffer): void {
    const lastId = payload.readUInt32BE(0) & 0x7fffffff;
    const code = payload.readUInt32BE(4);
    const debug = payload.toString('latin1', 8, Math.min(payload.length, 8 + 200));
    if (code === H2_ERROR.ENHANCE_YOUR_CALM && debug === 'too_many_pings') this.#owner.onTooManyPings?.();
    const reason = `GOAWAY ${h2ErrorName(code)}${debug ? ` (${debug})` : ''}`;
    this.#startDraining(reason);
    // Streams above the last id were not processed: they go again, on another connection.
    for (const [id, stream] of this.#streams) {
      if (id > lastId) {
        this.#streams.delete(id);
        stream.onUnprocessed(reason);
      }
    }
    this.#afterStreamEnd();
  }

  #onWindowUpdate(streamId: number, increment: number): void {
    if (streamId === 0) {
      if (increment === 0) throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'WINDOW_UPDATE of 0 on the connection');
      this.#sendWindow += increment;
      if (this.#sendWindow > MAX_WINDOW) throw new H2ConnectionError(H2_ERROR.FLOW_CONTROL_ERROR, 'the connection window above 2^31-1');
      this.#resumeBlocked();
      return;
    }
    const stream = this.#streams.get(streamId);
    if (!stream) return this.#checkClosedStream(streamId, 'WINDOW_UPDATE');
    if (increment === 0 || stream.sendWindow + increment > MAX_WINDOW) {
      this.reset(stream, increment === 0 ? H2_ERROR.PROTOCOL_ERROR : H2_ERROR.FLOW_CONTROL_ERROR);
      stream.onLost(`the server sent a WINDOW_UPDATE of ${increment} (${increment === 0 ? 'PROTOCOL_ERROR' : 'FLOW_CONTROL_ERROR'})`, true);
      return;
    }
    stream.sendWindow += increment;
    if (stream.blocked) this.#resumeBlocked();
  }

  /** A frame for a stream that is not open: fine for one we closed; a PROTOCOL_ERROR for one never opened. */
  #checkClosedStream(streamId: number, what: string): void {
    if (streamId % 2 === 0 || streamId >= this.#nextId) throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, `${what} on stream ${streamId}, which this client never opened`);
  }

  /** The server ended the stream (END_STREAM). If our body is not all sent, the rest is not needed. */
  #endStream(stream: H2Stream): void {
    this.#streams.delete(stream.id);
    if (stream.sent < stream.message.length + 5) this.#rstStream(stream.id, H2_ERROR.NO_ERROR);
    this.#afterStreamEnd();
  }

  #afterStreamEnd(): void {
    this.#drainQueue();
    if (this.#draining && this.#streams.size === 0 && this.#queue.length === 0) this.close('drained');
  }

  #drainQueue(): void {
    while (this.#queue.length > 0 && this.#streams.size < this.#maxStreams && !this.#draining && !this.#closed) this.#open(this.#queue.shift()!);
  }

  #startDraining(reason: string): void {
    if (this.#draining) return;
    this.#draining = true;
    const waiting = this.#queue;
    this.#queue = [];
    this.#owner.onDraining(this, reason);
    for (const stream of waiting) stream.onUnprocessed(reason);
  }

  #connectionError(error: H2ConnectionError): void {
    this.#goaway(error.code, error.message);
    this.#writer.flush();
    this.#shutdown(`h2 protocol error: ${error.message}`, true);
    this.#socket.end();
    this.#socket.destroySoon?.();
  }

  #onSocketClosed(error: string | undefined): void {
    if (this.#closed) return;
    const midFrame = this.#parser.pendingBytes > 0 ? ' in the middle of a frame' : '';
    this.#shutdown(error ? `${error}${midFrame}` : `the connection closed${midFrame}`, false);
    this.#socket.destroy();
  }

  /** Ends every stream (lost if open, handed back if waiting) and tells the owner. */
  #shutdown(reason: string, protocol: boolean): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopKeepalive();
    const open = [...this.#streams.values()];
    const waiting = this.#queue;
    this.#streams.clear();
    this.#queue = [];
    this.#blocked = [];
    if (!this.#draining) {
      this.#draining = true;
      this.#owner.onDraining(this, reason);
    }
    for (const stream of waiting) stream.onUnprocessed(reason);
    for (const stream of open) stream.onLost(protocol ? reason : `Connection dropped: ${reason}`, protocol);
    this.#owner.onClosed(this, reason);
  }

  #startKeepalive(): void {
    const every = this.#options.keepaliveTimeMs ?? 0;
    if (every <= 0) return;
    this.#keepaliveTimer = setInterval(() => {
      if (this.#pingTimer || (!this.#options.keepaliveWithoutCalls && this.#streams.size === 0)) return;
      const at = this.#writer.frame(8, FrameType.PING, 0, 0);
      this.#writer.out.fill(0, at, at + 8);
      this.#pingTimer = setTimeout(() => {
        this.#pingTimer = undefined;
        this.#shutdown(`keepalive ping not answered in ${this.#options.keepaliveTimeoutMs ?? 20_000}ms`, false);
        this.#socket.destroy();
      }, this.#options.keepaliveTimeoutMs ?? 20_000);
      this.#pingTimer.unref();
    }, every);
    this.#keepaliveTimer.unref();
  }

  #stopKeepalive(): void {
    if (this.#keepaliveTimer) clearInterval(this.#keepaliveTimer);
    if (this.#pingTimer) clearTimeout(this.#pingTimer);
    this.#keepaliveTimer = undefined;
    this.#pingTimer = undefined;
  }

  #checkFlood(): void {
    if (this.#socket.writableLength + this.#writer.pendingBytes > MAX_UNSENT_BYTES) {
      throw new H2ConnectionError(H2_ERROR.ENHANCE_YOUR_CALM, `over ${MAX_UNSENT_BYTES >> 20} MiB of acks the server does not read (a PING or SETTINGS flood)`);
    }
  }

  #rstStream(streamId: number, code: number): void {
    const at = this.#writer.frame(4, FrameType.RST_STREAM, 0, streamId);
    this.#writer.out.writeUInt32BE(code, at);
  }

  #windowUpdate(streamId: number, increment: number): void {
    const at = this.#writer.frame(4, FrameType.WINDOW_UPDATE, 0, streamId);
    this.#writer.out.writeUInt32BE(increment, at);
  }

  #goaway(code: number, message: string): void {
    const debug = Buffer.from(message.slice(0, 200), 'latin1');
    const at = this.#writer.frame(8 + debug.length, FrameType.GOAWAY, 0, 0);
    this.#writer.out.writeUInt32BE(0, at); // no stream of the server's was accepted
    this.#writer.out.writeUInt32BE(code, at + 4);
    debug.copy(this.#writer.out, at + 8);
  }
}
