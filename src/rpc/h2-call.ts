import * as grpc from '@grpc/grpc-js';
import type {CallOutcome, CancellableCall, RecordedMetadata} from './call.js';
import type {H2Channel, H2ChannelCall} from './h2-channel.js';
import type {H2Connection} from './h2-connection.js';
import {H2_ERROR} from './h2-frames.js';
import type {HeaderFields} from './hpack.js';
import type {MethodHandle} from '../schema/method-handle.js';
import {metadataToJson} from './metadata.js';
import {STATUS_DETAILS_KEY, statusDetailsOf} from './rich-status.js';

/** Times a call not processed by the server (REFUSED_STREAM, above a GOAWAY's last stream id) is sent again before it fails. */
const MAX_TRANSPARENT_RETRIES = 5;

/** What one call needs besides its channel and method. */
export interface H2CallSettings {
  readonly head: Buffer;
  /** The header list size of `head` with a `grpc-timeout` (see `H2Stream.headerListSize`). @default 0 */
  readonly headerListSize?: number;
  readonly deadline: number;
  readonly waitForReady: boolean;
  readonly recordMetadata: boolean;
  /** -1 = no limit. */
  readonly maxReceiveBytes: number;
  readonly inFlight: Set<CancellableCall> | undefined;
}

/**
 * One unary call of the `h2` transport: the stream the connection drives, the 5-byte gRPC message
 * framing of the reply, and the outcome (the same `CallOutcome`, codes and texts as `callUnary`'s
 * over grpc-js). One object and one callback per call.
 */
export class H2UnaryCall implements H2ChannelCall, CancellableCall {
  id = 0;
  sendWindow = 0;
  recvWindow = 0;
  blocked = false;
  sent = 0;
  connection: H2Connection | undefined;
  readonly head: Buffer;
  readonly headerListSize: number;
  readonly deadline: number;
  readonly waitForReady: boolean;
  readonly message: Buffer;
  readonly #channel: H2Channel;
  readonly #method: MethodHandle;
  readonly #settings: H2CallSettings;
  readonly #resolve: (outcome: CallOutcome) => void;
  readonly #started = performance.now();
  #done = false;
  #retries = 0;
  #headers: HeaderFields | undefined;
  #httpStatus = 0;
  #reply: Buffer | undefined;
  #replies = 0;
  /** A reply message spread over DATA frames: its 5-byte prefix, then its bytes. */
  #prefix: Buffer | undefined;
  #prefixBytes = 0;
  #body: Buffer | undefined;
  #bodyBytes = 0;

  constructor(
    channel: H2Channel,
    method: MethodHandle,
    request: Buffer,
    settings: H2CallSettings,
    resolve: (outcome: CallOutcome) => void,
  ) {
    this.#channel = channel;
    this.#method = method;
    this.#settings = settings;
    this.#resolve = resolve;
    this.head = settings.head;
    this.headerListSize = settings.headerListSize ?? 0;
    this.deadline = settings.deadline;
    this.waitForReady = settings.waitForReady;
    this.message = request;
  }

  /** Starts the call (the channel routes it). */
  start(): void {
    this.#settings.inFlight?.add(this);
    if (this.deadline !== Infinity) {
      if (Date.now() >= this.deadline) return this.expire();
      this.#channel.track(this);
    }
    this.#channel.start(this);
  }

  cancel(): void {
    if (this.#done) return;
    this.#channel.cancel(this);
    this.#fail(grpc.status.CANCELLED, 'Cancelled on client');
  }

  expire(): void {
    if (this.#done) return;
    this.#channel.cancel(this);
    this.#fail(grpc.status.DEADLINE_EXCEEDED, `Deadline exceeded after ${((performance.now() - this.#started) / 1000).toFixed(3)}s`);
  }

  noConnection(details: string): void {
    this.#fail(grpc.status.UNAVAILABLE, details);
  }

  onUnprocessed(reason: string): void {
    if (this.#done) return;
    if (++this.#retries > MAX_TRANSPARENT_RETRIES)
      return this.#fail(grpc.status.UNAVAILABLE, `Stream refused by server ${this.#retries - 1} times: ${reason}`);
    this.id = 0;
    this.#headers = undefined;
    this.#httpStatus = 0;
    this.#reply = undefined;
    this.#replies = 0;
    this.#prefix = undefined;
    this.#body = undefined;
    this.#channel.start(this);
  }

  onLost(details: string, protocol: boolean): void {
    this.#fail(protocol ? grpc.status.INTERNAL : grpc.status.UNAVAILABLE, details);
  }

  onReset(code: number): void {
    switch (code) {
      case H2_ERROR.NO_ERROR:
        if (this.#httpStatus !== 0 && this.#httpStatus !== 200) return this.#failHttp();
        return this.#fail(grpc.status.INTERNAL, `Received RST_STREAM with code ${code} (Call ended without gRPC status)`);
      case H2_ERROR.CANCEL:
        return this.#fail(grpc.status.CANCELLED, 'Call cancelled');
      case H2_ERROR.ENHANCE_YOUR_CALM:
        return this.#fail(grpc.status.RESOURCE_EXHAUSTED, 'Bandwidth exhausted or memory limit exceeded');
      case H2_ERROR.INADEQUATE_SECURITY:
        return this.#fail(grpc.status.PERMISSION_DENIED, 'Protocol not secure enough');
      case H2_ERROR.INTERNAL_ERROR:
        return this.#fail(grpc.status.INTERNAL, `Received RST_STREAM with code ${code} (Internal server error)`);
      default:
        return this.#fail(grpc.status.INTERNAL, `Received RST_STREAM with code ${code}`);
    }
  }

  onHeaders(fields: HeaderFields | null, endStream: boolean): void {
    if (this.#done) return;
    if (fields === null)
      return this.#refuse(grpc.status.RESOURCE_EXHAUSTED, "Received a header list larger than the client's limit (MAX_HEADER_LIST_SIZE)");
    if (this.#headers === undefined) {
      this.#headers = fields;
      for (let i = 0; i < fields.length; i += 2) {
        if (fields[i] === ':status') this.#httpStatus = Number(fields[i + 1]);
        else if (fields[i] === 'grpc-encoding' && fields[i + 1] !== 'identity') {
          return this.#refuse(
            grpc.status.UNIMPLEMENTED,
            `the server compressed its reply (grpc-encoding: ${fields[i + 1]}); the h2 transport accepts identity only`,
          );
        }
      }
      if (endStream) this.#finish(fields, true);
      return;
    }
    if (!endStream) return this.#refuse(grpc.status.INTERNAL, 'Received a second header block that does not end the stream');
    this.#finish(fields, false);
  }

  onData(data: Buffer, endStream: boolean): void {
    if (this.#done) return;
    if (this.#headers === undefined) return this.#refuse(grpc.status.INTERNAL, 'Received DATA before the response headers');
    if (this.#prefix === undefined && data.length >= 5 && data[0] === 0 && data.readUInt32BE(1) === data.length - 5) {
      // The common case: one whole message in one frame, handed on as a view.
      if (!this.#onMessage(data.subarray(5), data.length - 5)) return;
    } else if (!this.#assemble(data)) return;
    if (endStream) this.#finish(undefined, false);
  }

  /** Builds messages spread over frames; false when the call ended. */
  #assemble(data: Buffer): boolean {
    let at = 0;
    while (at < data.length) {
      if (this.#body === undefined) {
        this.#prefix ??= Buffer.allocUnsafe(5);
        const take = Math.min(5 - this.#prefixBytes, data.length - at);
        data.copy(this.#prefix, this.#prefixBytes, at, at + take);
        this.#prefixBytes += take;
        at += take;
        if (this.#prefixBytes < 5) return true;
        if (this.#prefix[0] !== 0) {
          this.#refuse(
            grpc.status.INTERNAL,
            this.#prefix[0] === 1
              ? 'Received a compressed message; the h2 transport accepts identity only (grpc-accept-encoding: identity)'
              : `Received a message with flags ${this.#prefix[0]}`,
          );
          return false;
        }
        const length = this.#prefix.readUInt32BE(1);
        const max = this.#settings.maxReceiveBytes;
        if (max >= 0 && length > max) {
          this.#refuse(grpc.status.RESOURCE_EXHAUSTED, `Received message larger than max (${length} vs ${max})`);
          return false;
        }
        this.#body = Buffer.allocUnsafe(length);
        this.#bodyBytes = 0;
      }
      const take = Math.min(this.#body.length - this.#bodyBytes, data.length - at);
      data.copy(this.#body, this.#bodyBytes, at, at + take);
      this.#bodyBytes += take;
      at += take;
      if (this.#bodyBytes === this.#body.length) {
        const body = this.#body;
        this.#body = undefined;
        this.#prefix = undefined;
        this.#prefixBytes = 0;
        if (!this.#onMessage(body, body.length)) return false;
      }
    }
    return true;
  }

  #onMessage(message: Buffer, length: number): boolean {
    const max = this.#settings.maxReceiveBytes;
    if (max >= 0 && length > max) {
      this.#refuse(grpc.status.RESOURCE_EXHAUSTED, `Received message larger than max (${length} vs ${max})`);
      return false;
    }
    if (++this.#replies > 1) {
      this.#refuse(grpc.status.UNIMPLEMENTED, 'Too many responses received');
      return false;
    }
    this.#reply = message;
    return true;
  }

  /** Ends the call from our side (RST_STREAM CANCEL) with this status. */
  #refuse(code: grpc.status, details: string): void {
    this.#channel.cancel(this);
    this.#fail(code, details);
  }

  #failHttp(): void {
    this.#fail(httpStatusCode(this.#httpStatus), `Received HTTP status code ${this.#httpStatus}`);
  }

  /** The stream ended: `trailers` (or the headers of a trailers-only reply) carry the status. */
  #finish(trailers: HeaderFields | undefined, trailersOnly: boolean): void {
    let code: number | undefined;
    let details = '';
    if (trailers) {
      for (let i = 0; i < trailers.length; i += 2) {
        const name = trailers[i];
        if (name === 'grpc-status') code = Number(trailers[i + 1]);
        else if (name === 'grpc-message') details = percentDecode(trailers[i + 1]!);
      }
    }
    if (code === undefined || !Number.isInteger(code)) {
      if (this.#httpStatus !== 0 && this.#httpStatus !== 200)
        return this.#fail(httpStatusCode(this.#httpStatus), `Received HTTP status code ${this.#httpStatus}`, trailers, trailersOnly);
      return this.#fail(grpc.status.UNKNOWN, 'No status information received', trailers, trailersOnly);
    }
    if (Date.now() >= this.deadline) return this.expire(); // an answer in the deadline's own millisecond is late
    if (code !== grpc.status.OK) return this.#fail(code, details, trailers, trailersOnly);
    this.#end();
    const latencyMs = performance.now() - this.#started;
    const recorded = this.#settings.recordMetadata ? {recorded: this.#recorded(trailers, trailersOnly, [])} : {};
    if (this.#reply === undefined)
      return this.#resolve({ok: false, code: grpc.status.UNIMPLEMENTED, details: 'No message received', latencyMs, ...recorded});
    let decoded: unknown;
    try {
      decoded = this.#method.decodeResponse(this.#reply);
    } catch (decodeError) {
      return this.#resolve({
        ok: false,
        code: grpc.status.INTERNAL,
        details: `response does not decode as ${this.#method.responseType}: ${(decodeError as Error).message}`,
        latencyMs,
        ...recorded,
      });
    }
    this.#resolve({ok: true, response: decoded, latencyMs, ...recorded});
  }

  #fail(code: grpc.status, details: string, trailers?: HeaderFields, trailersOnly = false): void {
    if (this.#done) return;
    this.#end();
    const latencyMs = performance.now() - this.#started;
    const metadata = toMetadata(trailers, true);
    const rich = trailers ? statusDetailsOf(metadata, this.#method.root) : undefined;
    this.#resolve({
      ok: false,
      code,
      details,
      latencyMs,
      trailers: metadata,
      ...(rich ? {statusDetails: rich.json, ...(rich.retryDelayMs !== undefined ? {retryDelayMs: rich.retryDelayMs} : {})} : {}),
      ...(this.#settings.recordMetadata
        ? {recorded: this.#recorded(trailers, trailersOnly, rich ? [STATUS_DETAILS_KEY] : [], metadata)}
        : {}),
    });
  }

  #end(): void {
    this.#done = true;
    this.#settings.inFlight?.delete(this);
    if (this.deadline !== Infinity) this.#channel.untrack(this);
  }

  #recorded(
    trailers: HeaderFields | undefined,
    trailersOnly: boolean,
    omit: readonly string[],
    trailerMetadata?: grpc.Metadata,
  ): RecordedMetadata {
    // As grpc-js: a trailers-only reply has no headers; its one block is the trailers.
    const headers = trailersOnly ? undefined : toMetadata(this.#headers, false);
    // As grpc-js's compression filter: the encoding headers are the transport's, not the call's.
    headers?.remove('grpc-encoding');
    headers?.remove('grpc-accept-encoding');
    return {headers: metadataToJson(headers), trailers: metadataToJson(trailerMetadata ?? toMetadata(trailers, true), omit)};
  }
}

/** Headers of which Node's http2 (what grpc-js reads) keeps the first value when one comes twice. */
const SINGLE_VALUE_HEADERS = new Set([
  'access-control-allow-credentials',
  'access-control-max-age',
  'access-control-request-method',
  'age',
  'authorization',
  'content-encoding',
  'content-language',
  'content-length',
  'content-location',
  'content-md5',
  'content-range',
  'content-type',
  'date',
  'dnt',
  'etag',
  'expires',
  'from',
  'host',
  'if-match',
  'if-modified-since',
  'if-none-match',
  'if-range',
  'if-unmodified-since',
  'last-modified',
  'location',
  'max-forwards',
  'proxy-authorization',
  'range',
  'referer',
  'retry-after',
  'tk',
  'upgrade-insecure-requests',
  'user-agent',
  'x-content-type-options',
]);

/**
 * Header fields as grpc-js's `Metadata` (pseudo-headers left out; `-bin` values decoded; grpc-status
 * and grpc-message left out of trailers). A field that comes twice is read as Node's http2 gives it to
 * grpc-js: the values joined with ", " ("; " for cookie), the first kept for a single-value header,
 * set-cookie's kept apart.
 */
export function toMetadata(fields: HeaderFields | undefined, trailers: boolean): grpc.Metadata {
  const metadata = new grpc.Metadata();
  if (!fields) return metadata;
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i]!;
    const value = fields[i + 1]!;
    if (name.charCodeAt(0) === 58 /* : */ || (trailers && (name === 'grpc-status' || name === 'grpc-message'))) continue;
    try {
      if (name.endsWith('-bin')) for (const part of value.split(',')) metadata.add(name, Buffer.from(part.trim(), 'base64'));
      else {
        const previous = metadata.get(name);
        if (previous.length === 0 || name === 'set-cookie') metadata.add(name, value);
        else if (!SINGLE_VALUE_HEADERS.has(name)) metadata.set(name, `${String(previous[0])}${name === 'cookie' ? '; ' : ', '}${value}`);
      }
    } catch {
      // A name grpc-js's Metadata refuses is left out, as grpc-js does.
    }
  }
  return metadata;
}

/** gRPC's status for an HTTP status other than 200 (as grpc-js maps it). */
function httpStatusCode(status: number): grpc.status {
  switch (status) {
    case 400:
      return grpc.status.INTERNAL;
    case 401:
      return grpc.status.UNAUTHENTICATED;
    case 403:
      return grpc.status.PERMISSION_DENIED;
    case 404:
      return grpc.status.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return grpc.status.UNAVAILABLE;
    default:
      return grpc.status.UNKNOWN;
  }
}

/** `grpc-message` is percent-encoded UTF-8 (gRPC over HTTP/2 spec); a malformed escape is kept as written. */
export function percentDecode(text: string): string {
  if (!text.includes('%')) return text;
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 37 && i + 2 < text.length && /^[0-9a-fA-F]{2}$/.test(text.slice(i + 1, i + 3))) {
      bytes.push(parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(c & 0xff);
  }
  return Buffer.from(bytes).toString('utf8');
}
