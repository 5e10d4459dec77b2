import * as grpc from '@grpc/grpc-js';
import type {MethodHandle} from './method.js';

/**
 * One unary call. A gRPC status is an outcome, not a throw (as grpc-js `StatusOr`): only bugs throw.
 */
export type CallOutcome =
  | {readonly ok: true; readonly response: unknown; readonly latencyMs: number}
  | {readonly ok: false; readonly code: grpc.status; readonly details: string; readonly latencyMs: number};

export interface CallOptions {
  /** Per-attempt deadline in ms; 0 = none. */
  readonly deadlineMs: number;
  /** Sent with every call; cloned per call. */
  readonly metadata?: grpc.Metadata;
  /** Wait for the channel to connect instead of failing fast with UNAVAILABLE. @default false */
  readonly waitForReady?: boolean;
  /** Registry of calls in flight, so a second Ctrl-C can cancel them. */
  readonly inFlight?: Set<grpc.ClientUnaryCall>;
}

const identity = (value: Buffer): Buffer => value;
const EMPTY_METADATA = new grpc.Metadata();

/** Sends one encoded request and resolves with its outcome. */
export function callUnary(client: grpc.Client, method: MethodHandle, request: Buffer, options: CallOptions): Promise<CallOutcome> {
  return new Promise((resolve) => {
    const started = performance.now();
    const callOptions: grpc.CallOptions = {};
    if (options.deadlineMs > 0) callOptions.deadline = Date.now() + options.deadlineMs;
    if (options.waitForReady) (callOptions as {waitForReady?: boolean}).waitForReady = true;
    const metadata = (options.metadata ?? EMPTY_METADATA).clone();
    if (options.waitForReady) metadata.setOptions({waitForReady: true});
    const inFlight = options.inFlight;
    const call = client.makeUnaryRequest<Buffer, Buffer>(
      method.path,
      identity,
      identity,
      request,
      metadata,
      callOptions,
      (error, response) => {
        inFlight?.delete(call);
        const latencyMs = performance.now() - started;
        if (error) {
          resolve({ok: false, code: error.code ?? grpc.status.UNKNOWN, details: error.details ?? error.message, latencyMs});
          return;
        }
        let decoded: unknown;
        try {
          decoded = method.decodeResponse(response!);
        } catch (decodeError) {
          resolve({ok: false, code: grpc.status.INTERNAL, details: `response does not decode as ${method.responseType}: ${(decodeError as Error).message}`, latencyMs});
          return;
        }
        resolve({ok: true, response: decoded, latencyMs});
      },
    );
    inFlight?.add(call);
  });
}
