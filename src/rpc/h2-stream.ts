import type {HeaderFields} from './hpack.js';

/** The contracts between an `h2` connection, the calls on it, and the channel that owns it. */

/** What the connection needs of a call: one plain object per call, no emitter, no stream class. */
export interface H2Stream {
  /** Stream id; 0 until the stream opens. Set by the connection. */
  id: number;
  /** Send window of the stream (the peer's). */
  sendWindow: number;
  /** Receive window of the stream (ours). */
  recvWindow: number;
  /** Waiting for a window update to send the rest of its body. */
  blocked: boolean;
  /** Request header block (method, metadata), HPACK-encoded once per method; `grpc-timeout` is added here. */
  readonly head: Buffer;
  /** The header list size of `head` and a `grpc-timeout` (RFC 9113 section 6.5.2: name and value bytes, plus 32 a field), checked against the server's SETTINGS_MAX_HEADER_LIST_SIZE. */
  readonly headerListSize: number;
  /** Absolute deadline, ms since the epoch; Infinity = none. */
  readonly deadline: number;
  /** The request message (without the 5-byte gRPC prefix, which the connection writes). */
  readonly message: Buffer;
  /** Bytes of prefix + message sent so far. */
  sent: number;
  onHeaders(fields: HeaderFields | null, endStream: boolean): void;
  /** A view of DATA; copy what must outlive the call. */
  onData(data: Buffer, endStream: boolean): void;
  /** The server reset the stream (not REFUSED_STREAM). */
  onReset(code: number): void;
  /** The server did not process the stream (REFUSED_STREAM, GOAWAY below its id, closed before it was sent): send it again. */
  onUnprocessed(reason: string): void;
  /** The connection broke under the stream. `protocol`: this end found the peer broke HTTP/2. */
  onLost(details: string, protocol: boolean): void;
}

export interface H2ConnectionOptions {
  /** `:authority`, for messages. */
  readonly authority: string;
  /** Ping every this long (ms); 0 = no keepalive. @default 0 */
  readonly keepaliveTimeMs?: number;
  /** Close when a keepalive ping is not answered in this long (ms). @default 20_000 */
  readonly keepaliveTimeoutMs?: number;
  /** Ping even with no call in flight. @default false */
  readonly keepaliveWithoutCalls?: boolean;
  /** The first stream id (odd): tests start near 2^31 to see the ids run out. @default 1 */
  readonly firstStreamId?: number;
}
