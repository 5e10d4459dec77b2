import type {H2Connection} from './h2-connection.js';
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
