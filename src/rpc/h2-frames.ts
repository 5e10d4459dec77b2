/**
 * HTTP/2 framing (RFC 9113 section 4 and 6) for the `h2` transport: frame types, flags, error
 * codes, a parser that cuts frames out of socket chunks in place (payloads are views of the chunk,
 * not copies), and the frame-size rules of each type. A rule broken is an `H2ConnectionError`: the
 * only thing the parser throws, whatever bytes come in.
 */

export const FRAME_HEADER_BYTES = 9;
/** SETTINGS_MAX_FRAME_SIZE's initial value, and the largest frame this client accepts. */
export const DEFAULT_MAX_FRAME_SIZE = 16_384;
export const MAX_WINDOW = 2 ** 31 - 1;
export const CONNECTION_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export const enum FrameType {
  DATA = 0,
  HEADERS = 1,
  PRIORITY = 2,
  RST_STREAM = 3,
  SETTINGS = 4,
  PUSH_PROMISE = 5,
  PING = 6,
  GOAWAY = 7,
  WINDOW_UPDATE = 8,
  CONTINUATION = 9,
}

export const enum Flag {
  END_STREAM = 0x1,
  // biome-ignore lint/suspicious/noDuplicateEnumValues: HTTP/2 gives END_STREAM (DATA, HEADERS) and ACK (SETTINGS, PING) the same bit (RFC 9113 6.5, 6.7)
  ACK = 0x1,
  END_HEADERS = 0x4,
  PADDED = 0x8,
  PRIORITY = 0x20,
}

export const enum Setting {
  HEADER_TABLE_SIZE = 1,
  ENABLE_PUSH = 2,
  MAX_CONCURRENT_STREAMS = 3,
  INITIAL_WINDOW_SIZE = 4,
  MAX_FRAME_SIZE = 5,
  MAX_HEADER_LIST_SIZE = 6,
}

/** HTTP/2 error codes (RFC 9113 section 7). */
export const H2_ERROR = {
  NO_ERROR: 0,
  PROTOCOL_ERROR: 1,
  INTERNAL_ERROR: 2,
  FLOW_CONTROL_ERROR: 3,
  SETTINGS_TIMEOUT: 4,
  STREAM_CLOSED: 5,
  FRAME_SIZE_ERROR: 6,
  REFUSED_STREAM: 7,
  CANCEL: 8,
  COMPRESSION_ERROR: 9,
  CONNECT_ERROR: 10,
  ENHANCE_YOUR_CALM: 11,
  INADEQUATE_SECURITY: 12,
  HTTP_1_1_REQUIRED: 13,
} as const;

const ERROR_NAMES = Object.fromEntries(Object.entries(H2_ERROR).map(([name, code]) => [code, name])) as Record<number, string>;

/** `PROTOCOL_ERROR`, or `0x2a` for a code RFC 9113 does not name. */
export function h2ErrorName(code: number): string {
  return ERROR_NAMES[code] ?? `0x${code.toString(16)}`;
}

/** A connection error (RFC 9113 section 5.4.1): the connection ends with GOAWAY and this code. */
export class H2ConnectionError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(`${h2ErrorName(code)}: ${message}`);
    this.name = 'H2ConnectionError';
  }
}

/** Called once per complete frame; `payload` is a view valid until the handler returns, unless copied. */
export type FrameHandler = (type: number, flags: number, streamId: number, payload: Buffer) => void;

/**
 * Cuts frames out of the byte stream. Whole frames in a chunk are handed on as views of it; only a
 * frame split across chunks is copied (once, when its last byte comes).
 */
export class FrameParser {
  /** The largest payload accepted (our SETTINGS_MAX_FRAME_SIZE). */
  readonly maxFrameSize: number;
  #partial: Buffer | undefined;

  constructor(maxFrameSize = DEFAULT_MAX_FRAME_SIZE) {
    this.maxFrameSize = maxFrameSize;
  }

  /** Bytes held back of a frame not yet complete (a connection that ends now ended mid-frame). */
  get pendingBytes(): number {
    return this.#partial?.length ?? 0;
  }

  /** Parses `chunk`, calling `onFrame` for each complete frame. Throws `H2ConnectionError` only. */
  push(chunk: Buffer, onFrame: FrameHandler): void {
    let data = chunk;
    if (this.#partial) {
      data = Buffer.concat([this.#partial, chunk]);
      this.#partial = undefined;
    }
    let offset = 0;
    const end = data.length;
    while (end - offset >= FRAME_HEADER_BYTES) {
      const length = (data[offset]! << 16) | (data[offset + 1]! << 8) | data[offset + 2]!;
      if (length > this.maxFrameSize)
        throw new H2ConnectionError(
          H2_ERROR.FRAME_SIZE_ERROR,
          `a frame of ${length} bytes is above SETTINGS_MAX_FRAME_SIZE (${this.maxFrameSize})`,
        );
      if (end - offset < FRAME_HEADER_BYTES + length) break;
      const type = data[offset + 3]!;
      const flags = data[offset + 4]!;
      const streamId = data.readUInt32BE(offset + 5) & 0x7fffffff;
      checkFrame(type, flags, streamId, length);
      const start = offset + FRAME_HEADER_BYTES;
      offset = start + length;
      onFrame(type, flags, streamId, data.subarray(start, offset));
    }
    if (offset < end) this.#partial = offset === 0 ? data : data.subarray(offset);
  }
}

/** The size and stream rules of each frame type (RFC 9113 section 6); unknown types pass (they are ignored). */
export function checkFrame(type: number, flags: number, streamId: number, length: number): void {
  switch (type) {
    case FrameType.DATA:
    case FrameType.HEADERS:
    case FrameType.CONTINUATION:
    case FrameType.PUSH_PROMISE:
    case FrameType.PRIORITY:
    case FrameType.RST_STREAM:
      if (streamId === 0) throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, `${frameName(type)} on stream 0`);
      break;
    case FrameType.SETTINGS:
    case FrameType.PING:
    case FrameType.GOAWAY:
      if (streamId !== 0) throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, `${frameName(type)} on stream ${streamId}`);
      break;
  }
  switch (type) {
    case FrameType.PRIORITY:
      if (length !== 5) throw new H2ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, `PRIORITY of ${length} bytes (expected 5)`);
      break;
    case FrameType.RST_STREAM:
    case FrameType.WINDOW_UPDATE:
      if (length !== 4) throw new H2ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, `${frameName(type)} of ${length} bytes (expected 4)`);
      break;
    case FrameType.PING:
      if (length !== 8) throw new H2ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, `PING of ${length} bytes (expected 8)`);
      break;
    case FrameType.SETTINGS:
      if (length % 6 !== 0)
        throw new H2ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, `SETTINGS of ${length} bytes (expected a multiple of 6)`);
      if (flags & Flag.ACK && length !== 0) throw new H2ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, 'SETTINGS ACK with a payload');
      break;
    case FrameType.GOAWAY:
      if (length < 8) throw new H2ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, `GOAWAY of ${length} bytes (expected 8 or more)`);
      break;
  }
}

/**
 * The payload of a DATA or HEADERS frame without its padding (and, for HEADERS, the priority
 * fields). Padding longer than the frame is a PROTOCOL_ERROR.
 */
export function framePayload(type: number, flags: number, payload: Buffer): Buffer {
  let start = 0;
  let end = payload.length;
  if (flags & Flag.PADDED) {
    if (end < 1) throw new H2ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, `a padded ${frameName(type)} with no pad length`);
    end -= payload[0]!;
    start = 1;
  }
  if (type === FrameType.HEADERS && flags & Flag.PRIORITY) start += 5;
  if (end < start) throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, `the padding of a ${frameName(type)} is longer than the frame`);
  return start === 0 && end === payload.length ? payload : payload.subarray(start, end);
}

export function frameName(type: number): string {
  return (
    ['DATA', 'HEADERS', 'PRIORITY', 'RST_STREAM', 'SETTINGS', 'PUSH_PROMISE', 'PING', 'GOAWAY', 'WINDOW_UPDATE', 'CONTINUATION'][type] ??
    `frame type ${type}`
  );
}

/** Writes a frame header at `offset` of `out`; returns the offset after it. */
export function writeFrameHeader(out: Buffer, offset: number, length: number, type: number, flags: number, streamId: number): number {
  out[offset] = length >>> 16;
  out[offset + 1] = (length >>> 8) & 0xff;
  out[offset + 2] = length & 0xff;
  out[offset + 3] = type;
  out[offset + 4] = flags;
  out.writeUInt32BE(streamId, offset + 5);
  return offset + FRAME_HEADER_BYTES;
}
