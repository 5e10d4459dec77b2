import * as grpc from '@grpc/grpc-js';
import type {MethodHandle} from '../schema/method-handle.js';
import {metadataToJson, type MetadataJson} from './metadata.js';
import {STATUS_DETAILS_KEY, statusDetailsOf} from './rich-status.js';

/** Response headers and trailers as a results line records them (`recordMetadata: true`). */
export interface RecordedMetadata {
  readonly headers: MetadataJson;
  readonly trailers: MetadataJson;
}

/**
 * One unary call. A gRPC status is an outcome, not a throw (as grpc-js `StatusOr`): only bugs throw.
 */
export type CallOutcome =
  | {readonly ok: true; readonly response: unknown; readonly latencyMs: number; readonly recorded?: RecordedMetadata}
  | {
      readonly ok: false;
      readonly code: grpc.status;
      readonly details: string;
      readonly latencyMs: number;
      /** The status's trailers as received (server pushback reads them). */
      readonly trailers?: grpc.Metadata;
      /** The google.rpc.Status of `grpc-status-details-bin`, in proto3 JSON. */
      readonly statusDetails?: unknown;
      /** What a RetryInfo detail asked the client to wait before retrying, in ms. */
      readonly retryDelayMs?: number;
      readonly recorded?: RecordedMetadata;
    };

/** What one record may set for its own calls (templated metadata, an envelope's metadata and deadline). */
export interface PerCallOptions {
  /** Replaces the job's metadata for this call (it already holds the job's keys). */
  readonly metadata?: grpc.Metadata | undefined;
  /** Per-attempt deadline in ms for this call; 0 = none. */
  readonly deadlineMs?: number | undefined;
}

/** A call in flight, as the cancel registry holds it. */
export interface CancellableCall {
  /** Cancels the call: it ends with CANCELLED. */
  cancel(): void;
}

export interface CallOptions {
  /** Per-attempt deadline in ms; 0 = none. */
  readonly deadlineMs: number;
  /** Sent with every call; cloned per call. */
  readonly metadata?: grpc.Metadata;
  /** Wait for the channel to connect instead of failing fast with UNAVAILABLE. @default false */
  readonly waitForReady?: boolean;
  /** Registry of calls in flight, so a second Ctrl-C can cancel them. */
  readonly inFlight?: Set<CancellableCall>;
  /** Put the response headers and trailers in the outcome. @default false */
  readonly recordMetadata?: boolean;
}

/** What every call starts with: the channel's call object, its metadata and deadline, and its handle in the run's in-flight set. */
function openCall(client: grpc.Client, method: MethodHandle, options: CallOptions, perCall: PerCallOptions) {
  const started = performance.now();
  const deadlineMs = perCall.deadlineMs ?? options.deadlineMs;
  const deadline = deadlineMs > 0 ? Date.now() + deadlineMs : Infinity;
  // Cloned because grpc-js adds its own headers to the metadata it is given.
  const given = perCall.metadata ?? options.metadata;
  const metadata = given ? given.clone() : new grpc.Metadata();
  if (options.waitForReady) metadata.setOptions({waitForReady: true});
  const inFlight = options.inFlight;
  const call = client.getChannel().createCall(method.path, deadline, undefined, null, undefined);
  const handle: CancellableCall = {cancel: () => call.cancelWithStatus(grpc.status.CANCELLED, 'Cancelled on client')};
  inFlight?.add(handle);
  return {started, metadata, call, handle, inFlight};
}

/** The outcome of a call the server ended with a status other than OK, with its rich error details when it sent them. */
function statusOutcome(
  status: grpc.StatusObject,
  latencyMs: number,
  rich: ReturnType<typeof statusDetailsOf>,
  recorded: {recorded?: RecordedMetadata},
): CallOutcome {
  return {
    ok: false,
    code: status.code,
    details: status.details,
    latencyMs,
    trailers: status.metadata,
    ...(rich ? {statusDetails: rich.json, ...(rich.retryDelayMs !== undefined ? {retryDelayMs: rich.retryDelayMs} : {})} : {}),
    ...recorded,
  };
}

/**
 * Sends one encoded request and resolves with its outcome.
 *
 * It drives the channel's call object directly (`Channel#createCall`), the layer under
 * `Client#makeUnaryRequest`, with the same order of operations (start, read, send, half-close)
 * and the same statuses. It skips what a batch run never uses but pays for on every call: the
 * interceptor chain, the `ClientUnaryCall` event emitter, and the caller stack trace captured in
 * case of an error (`new Error()`, the costliest of them). With requests already encoded, that
 * is most of the client-side JavaScript per call (see bench/README.md).
 */
export function callUnary(
  client: grpc.Client,
  method: MethodHandle,
  request: Buffer,
  options: CallOptions,
  perCall: PerCallOptions = {},
): Promise<CallOutcome> {
  return new Promise((resolve) => {
    const {started, metadata, call, handle, inFlight} = openCall(client, method, options, perCall);
    let response: Buffer | undefined;
    let messages = 0;
    let headers: grpc.Metadata | undefined;
    call.start(metadata, {
      onReceiveMetadata(received: grpc.Metadata) {
        headers = received;
      },
      onReceiveMessage(message: Buffer) {
        messages++;
        if (messages > 1) call.cancelWithStatus(grpc.status.UNIMPLEMENTED, 'Too many responses received');
        else response = message;
      },
      onReceiveStatus(status: grpc.StatusObject) {
        inFlight?.delete(handle);
        const latencyMs = performance.now() - started;
        const rich = status.code !== grpc.status.OK ? statusDetailsOf(status.metadata, method.root) : undefined;
        const recorded: {recorded?: RecordedMetadata} = options.recordMetadata
          ? {recorded: {headers: metadataToJson(headers), trailers: metadataToJson(status.metadata, rich ? [STATUS_DETAILS_KEY] : [])}}
          : {};
        if (status.code !== grpc.status.OK) {
          resolve(statusOutcome(status, latencyMs, rich, recorded));
          return;
        }
        if (response === undefined) {
          resolve({ok: false, code: grpc.status.UNIMPLEMENTED, details: 'No message received', latencyMs, ...recorded});
          return;
        }
        let decoded: unknown;
        try {
          decoded = method.decodeResponse(response);
        } catch (decodeError) {
          resolve({
            ok: false,
            code: grpc.status.INTERNAL,
            details: `response does not decode as ${method.responseType}: ${(decodeError as Error).message}`,
            latencyMs,
            ...recorded,
          });
          return;
        }
        resolve({ok: true, response: decoded, latencyMs, ...recorded});
      },
    });
    call.startRead();
    call.sendMessageWithContext({}, request);
    call.halfClose();
  });
}

/** Replies kept for one record of a server-streaming method when the job sets no `maxRepliesPerRecord`. */
export const DEFAULT_MAX_REPLIES = 10_000;

/**
 * One server-streaming call: one request, its replies collected in order and decoded. The outcome's
 * `response` is the array of replies, given only once the stream ends OK: a stream cut short (a
 * deadline, a cancel, a crash) gives no partial result, so its record is sent again whole and none
 * of its replies is written twice. More than `maxReplies` replies cancel the call: RESOURCE_EXHAUSTED.
 */
export function callServerStream(
  client: grpc.Client,
  method: MethodHandle,
  request: Buffer,
  options: CallOptions & {readonly maxReplies: number},
  perCall: PerCallOptions = {},
): Promise<CallOutcome> {
  return new Promise((resolve) => {
    const {started, metadata, call, handle, inFlight} = openCall(client, method, options, perCall);
    const replies: unknown[] = [];
    let failure: {code: grpc.status; details: string} | undefined;
    let headers: grpc.Metadata | undefined;
    call.start(metadata, {
      onReceiveMetadata(received: grpc.Metadata) {
        headers = received;
      },
      onReceiveMessage(message: Buffer) {
        if (failure) return;
        if (replies.length >= options.maxReplies) {
          failure = {
            code: grpc.status.RESOURCE_EXHAUSTED,
            details: `more than maxRepliesPerRecord (${options.maxReplies}) replies; the stream was cancelled (raise maxRepliesPerRecord if that many are expected)`,
          };
          call.cancelWithStatus(grpc.status.CANCELLED, 'Too many replies');
          return;
        }
        try {
          replies.push(method.decodeResponse(message));
        } catch (decodeError) {
          failure = {
            code: grpc.status.INTERNAL,
            details: `reply ${replies.length + 1} does not decode as ${method.responseType}: ${(decodeError as Error).message}`,
          };
          call.cancelWithStatus(grpc.status.CANCELLED, 'Undecodable reply');
          return;
        }
        call.startRead();
      },
      onReceiveStatus(status: grpc.StatusObject) {
        inFlight?.delete(handle);
        const latencyMs = performance.now() - started;
        const rich = status.code !== grpc.status.OK && !failure ? statusDetailsOf(status.metadata, method.root) : undefined;
        const recorded: {recorded?: RecordedMetadata} = options.recordMetadata
          ? {recorded: {headers: metadataToJson(headers), trailers: metadataToJson(status.metadata, rich ? [STATUS_DETAILS_KEY] : [])}}
          : {};
        if (failure) return resolve({ok: false, ...failure, latencyMs, ...recorded});
        if (status.code !== grpc.status.OK) {
          resolve(statusOutcome(status, latencyMs, rich, recorded));
          return;
        }
        resolve({ok: true, response: replies, latencyMs, ...recorded});
      },
    });
    call.startRead();
    call.sendMessageWithContext({}, request);
    call.halfClose();
  });
}
