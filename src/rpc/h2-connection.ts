import type {Socket} from 'node:net';
import {
  CONNECTION_PREFACE,
  DEFAULT_MAX_FRAME_SIZE,
  Flag,
  FrameParser,
  framePayload,
  FrameType,
  H2_ERROR,
  H2ConnectionError,
  h2ErrorName,
  MAX_WINDOW,
} from './h2-frames.js';
import {CONNECTION_WINDOW, H2PeerSettings, MAX_HEADER_LIST_SIZE, OUR_SETTINGS, STREAM_WINDOW} from './h2-connection-settings.js';
import {H2HeaderBlocks} from './h2-connection-headers.js';
import {H2Keepalive} from './h2-connection-keepalive.js';
import {writeBody, writeGoaway, writeRequestHeaders, writeRstStream, writeWindowUpdate} from './h2-connection-write.js';
import {DEFAULT_TABLE_SIZE, HpackDecoder} from './hpack.js';
import type {H2ConnectionOptions, H2Stream} from './h2-stream.js';
import {FrameWriter} from './h2-writer.js';

/**
 * One HTTP/2 client connection (RFC 9113) for gRPC unary calls: the preface and SETTINGS (streams
 * open only once the server's SETTINGS came), acks of SETTINGS and PING, flow control both ways,
 * MAX_CONCURRENT_STREAMS (streams over it wait here), RST_STREAM, GOAWAY (streams above its last
 * stream id are handed back unprocessed, to be sent again elsewhere), keepalive pings. Every frame
 * of an event-loop turn goes out in one `socket.write`. The server's settings are in
 * h2-connection-settings.ts, the request's frames in h2-connection-write.ts, header blocks in
 * h2-connection-headers.ts, keepalive in h2-connection-keepalive.ts.
 */

/** Callbacks to the channel that owns the connection. */
export interface H2ConnectionOwner {
  /** The server's SETTINGS came: streams may open. */
  onReady(connection: H2Connection): void;
  /** No new stream may open here (GOAWAY, stream ids used up); the connection ends once its streams do. */
  onDraining(connection: H2Connection, reason: string): void;
  /** The socket closed. `error`: why, when it was not a clean end. */
  onClosed(connection: H2Connection, error: string | undefined): void;
  /** The server said `too_many_pings`: the channel doubles its keepalive time. */
  onTooManyPings?(): void;
}

/** Acks the peer does not read: past this much unsent, the connection ends (a PING or SETTINGS flood). */
const MAX_UNSENT_BYTES = 16 << 20;
const MAX_STREAM_ID = 2 ** 31 - 1;

export class H2Connection {
  readonly #socket: Socket;
  readonly #owner: H2ConnectionOwner;
  readonly #parser = new FrameParser(DEFAULT_MAX_FRAME_SIZE);
  readonly #decoder = new HpackDecoder(DEFAULT_TABLE_SIZE);
  readonly #streams = new Map<number, H2Stream>();
  /** Streams over MAX_CONCURRENT_STREAMS, in arrival order. */
  #queue: H2Stream[] = [];
  #blocked: H2Stream[] = [];
  #nextId: number;
  #ready = false;
  #draining = false;
  #closed = false;
  readonly #peer = new H2PeerSettings();
  #sendWindow = 65_535;
  #recvWindow = CONNECTION_WINDOW;
  readonly #headerBlocks = new H2HeaderBlocks();
  readonly #writer: FrameWriter;
  readonly #keepalive: H2Keepalive;

  constructor(socket: Socket, owner: H2ConnectionOwner, options: H2ConnectionOptions) {
    this.#socket = socket;
    this.#owner = owner;
    this.#writer = new FrameWriter(socket);
    this.#nextId = options.firstStreamId ?? 1;
    this.#keepalive = new H2Keepalive(options, {
      openStreams: () => this.#streams.size,
      ping: () => {
        const at = this.#writer.frame(8, FrameType.PING, 0, 0);
        this.#writer.out.fill(0, at, at + 8);
      },
      unanswered: (reason) => {
        this.#shutdown(reason, false);
        this.#socket.destroy();
      },
    });
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
    writeWindowUpdate(this.#writer, 0, CONNECTION_WINDOW - 65_535);
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
    if (this.#streams.size < this.#peer.maxStreams && this.#queue.length === 0) this.#open(stream);
    else this.#queue.push(stream);
  }

  /** Ends a stream of ours (cancel, deadline, a reply refused): RST_STREAM if it is open. Its callbacks are not called again. */
  reset(stream: H2Stream, code: number = H2_ERROR.CANCEL): void {
    if (stream.id !== 0 && this.#streams.get(stream.id) === stream) {
      this.#streams.delete(stream.id);
      writeRstStream(this.#writer, stream.id, code);
      this.#afterStreamEnd();
      return;
    }
    const at = this.#queue.indexOf(stream);
    if (at >= 0) this.#queue.splice(at, 1);
  }

  /** Closes the connection at once: streams are lost, those waiting handed back. Idempotent. */
  close(reason = 'the channel was closed'): void {
    if (this.#closed) return;
    writeGoaway(this.#writer, H2_ERROR.NO_ERROR, '');
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
    if (stream.headerListSize > this.#peer.maxHeaderList) {
      stream.onLost(
        `the request's header list is ${stream.headerListSize} bytes, over the server's limit of ${this.#peer.maxHeaderList} (SETTINGS_MAX_HEADER_LIST_SIZE): send less metadata`,
        true,
      );
      return;
    }
    const id = this.#nextId;
    this.#nextId += 2;
    stream.id = id;
    stream.sendWindow = this.#peer.initialWindow;
    stream.recvWindow = STREAM_WINDOW;
    stream.blocked = false;
    stream.sent = 0;
    this.#streams.set(id, stream);
    writeRequestHeaders(this.#writer, stream, this.#peer.maxFrame, this.#peer.tableSizeUpdate);
    this.#peer.tableSizeUpdate = undefined;
    this.#sendBody(stream);
    if (this.#nextId > MAX_STREAM_ID) this.#startDraining('stream ids used up');
  }

  /** Sends as much of the stream's body as the windows allow. */
  #sendBody(stream: H2Stream): void {
    this.#sendWindow -= writeBody(this.#writer, stream, this.#sendWindow, this.#peer.maxFrame);
    if (stream.sent < stream.message.length + 5 && !stream.blocked) {
      stream.blocked = true;
      this.#blocked.push(stream);
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
    if (this.#headerBlocks.inProgress && type !== FrameType.CONTINUATION)
      throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, `${type} frame in the middle of a header block (CONTINUATION expected)`);
    if (!this.#ready && type !== FrameType.SETTINGS)
      throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'the server preface did not start with SETTINGS');
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
      writeWindowUpdate(this.#writer, 0, CONNECTION_WINDOW - this.#recvWindow);
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
      writeWindowUpdate(this.#writer, streamId, STREAM_WINDOW - stream.recvWindow);
      stream.recvWindow = STREAM_WINDOW;
    }
    if (end) this.#endStream(stream);
    stream.onData(data, end);
  }

  #onHeadersFrame(flags: number, streamId: number, payload: Buffer): void {
    const fragment = framePayload(FrameType.HEADERS, flags, payload);
    const endStream = (flags & Flag.END_STREAM) !== 0;
    if (flags & Flag.END_HEADERS) return this.#onHeaderBlock(streamId, endStream, fragment);
    this.#headerBlocks.begin(streamId, endStream, fragment);
  }

  #onContinuation(flags: number, streamId: number, payload: Buffer): void {
    const whole = this.#headerBlocks.add(flags, streamId, payload);
    if (whole) this.#onHeaderBlock(whole.streamId, whole.endStream, whole.block);
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
    const windowDelta = this.#peer.apply(payload);
    if (windowDelta !== 0) {
      for (const stream of this.#streams.values()) {
        stream.sendWindow += windowDelta;
        if (stream.sendWindow > MAX_WINDOW) throw new H2ConnectionError(H2_ERROR.FLOW_CONTROL_ERROR, 'a stream window above 2^31-1');
      }
    }
    this.#writer.frame(0, FrameType.SETTINGS, Flag.ACK, 0);
    this.#checkFlood();
    if (!this.#ready) {
      this.#ready = true;
      this.#keepalive.start();
      this.#owner.onReady(this);
    }
    this.#drainQueue();
    this.#resumeBlocked();
  }

  #onPing(flags: number, payload: Buffer): void {
    if (flags & Flag.ACK) return this.#keepalive.acked();
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
    if (streamId % 2 === 0 || streamId >= this.#nextId)
      throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, `${what} on stream ${streamId}, which this client never opened`);
  }

  /** The server ended the stream (END_STREAM). If our body is not all sent, the rest is not needed. */
  #endStream(stream: H2Stream): void {
    this.#streams.delete(stream.id);
    if (stream.sent < stream.message.length + 5) writeRstStream(this.#writer, stream.id, H2_ERROR.NO_ERROR);
    this.#afterStreamEnd();
  }

  #afterStreamEnd(): void {
    this.#drainQueue();
    if (this.#draining && this.#streams.size === 0 && this.#queue.length === 0) this.close('drained');
  }

  #drainQueue(): void {
    while (this.#queue.length > 0 && this.#streams.size < this.#peer.maxStreams && !this.#draining && !this.#closed)
      this.#open(this.#queue.shift()!);
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
    writeGoaway(this.#writer, error.code, error.message);
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
    this.#keepalive.stop();
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

  #checkFlood(): void {
    if (this.#socket.writableLength + this.#writer.pendingBytes > MAX_UNSENT_BYTES) {
      throw new H2ConnectionError(
        H2_ERROR.ENHANCE_YOUR_CALM,
        `over ${MAX_UNSENT_BYTES >> 20} MiB of acks the server does not read (a PING or SETTINGS flood)`,
      );
    }
  }
}
