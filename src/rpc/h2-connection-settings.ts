import {DEFAULT_MAX_FRAME_SIZE, H2_ERROR, H2ConnectionError, MAX_WINDOW, Setting} from './h2-frames.js';
import {DEFAULT_TABLE_SIZE} from './hpack.js';

/** Our receive windows: 1 MiB per stream, 16 MiB for the connection (the spec's 64 KiB would cap a reply at one round trip per 64 KiB). */
export const STREAM_WINDOW = 1 << 20;
export const CONNECTION_WINDOW = 16 << 20;
/** Decoded response header lists above this fail their call (advertised as SETTINGS_MAX_HEADER_LIST_SIZE). */
export const MAX_HEADER_LIST_SIZE = 64 << 10;

/** The SETTINGS this client sends first. */
export const OUR_SETTINGS: readonly [number, number][] = [
  [Setting.ENABLE_PUSH, 0],
  [Setting.INITIAL_WINDOW_SIZE, STREAM_WINDOW],
  [Setting.MAX_HEADER_LIST_SIZE, MAX_HEADER_LIST_SIZE],
];

/**
 * The server's settings (RFC 9113 section 6.5.2) as an `h2` connection obeys them, from their
 * initial values; a value out of range is a connection error.
 */
export class H2PeerSettings {
  /** SETTINGS_MAX_CONCURRENT_STREAMS: streams over it wait on the connection. */
  maxStreams = Infinity;
  /** SETTINGS_INITIAL_WINDOW_SIZE: the send window of a new stream. */
  initialWindow = 65_535;
  /** SETTINGS_MAX_FRAME_SIZE: the largest frame we may send. */
  maxFrame = DEFAULT_MAX_FRAME_SIZE;
  /** SETTINGS_MAX_HEADER_LIST_SIZE: a request whose header list is larger fails before it is sent. */
  maxHeaderList = Infinity;
  /** A table size the peer lowered its SETTINGS_HEADER_TABLE_SIZE to: announced in the next header block, then cleared. */
  tableSizeUpdate: number | undefined;

  /** Applies a SETTINGS frame's payload; returns how much INITIAL_WINDOW_SIZE changed (for the open streams' send windows). */
  apply(payload: Buffer): number {
    let windowDelta = 0;
    for (let at = 0; at < payload.length; at += 6) {
      const id = payload.readUInt16BE(at);
      const value = payload.readUInt32BE(at + 2);
      switch (id) {
        case Setting.HEADER_TABLE_SIZE:
          // Our encoder keeps no table; a lowered limit is still announced, as the decoder may expect it.
          if (value < DEFAULT_TABLE_SIZE) this.tableSizeUpdate = value;
          break;
        case Setting.ENABLE_PUSH:
          if (value > 1) throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, `SETTINGS_ENABLE_PUSH ${value}`);
          break;
        case Setting.MAX_CONCURRENT_STREAMS:
          this.maxStreams = value;
          break;
        case Setting.INITIAL_WINDOW_SIZE:
          if (value > MAX_WINDOW) throw new H2ConnectionError(H2_ERROR.FLOW_CONTROL_ERROR, `SETTINGS_INITIAL_WINDOW_SIZE ${value}`);
          windowDelta += value - this.initialWindow;
          this.initialWindow = value;
          break;
        case Setting.MAX_FRAME_SIZE:
          if (value < DEFAULT_MAX_FRAME_SIZE || value > 16_777_215)
            throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, `SETTINGS_MAX_FRAME_SIZE ${value}`);
          this.maxFrame = value;
          break;
        case Setting.MAX_HEADER_LIST_SIZE:
          this.maxHeaderList = value;
          break;
        default:
          break; // unknown settings are ignored (RFC 9113 section 6.5.2)
      }
    }
    return windowDelta;
  }
}
