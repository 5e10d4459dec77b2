import type * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import {callUnary, type CallOptions, type CancellableCall} from './call.js';
import type {ChannelPool} from './channel.js';
import {callUnaryH2} from './h2-transport.js';
import {cleanDetails} from './explain.js';
import type {MethodHandle} from '../schema/method-handle.js';
import {Status, statusName} from '../codec/status.js';

const SERVING_STATUS = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];

/**
 * The standard health check (`grpc.health.v1.Health/Check` with an empty request): read-only on
 * every server, so it can be sent to one that has never seen grpc-batch, and answered at once by
 * every gRPC server, if only with UNIMPLEMENTED, whatever its handlers are doing. Hand-encoded: the
 * request is empty and the response is one enum field.
 */
export const HEALTH_CHECK: MethodHandle = {
  name: 'grpc.health.v1.Health/Check',
  path: '/grpc.health.v1.Health/Check',
  requestType: 'grpc.health.v1.HealthCheckRequest',
  responseType: 'grpc.health.v1.HealthCheckResponse',
  kind: 'unary',
  encodeRequest: () => Buffer.alloc(0),
  decodeResponse: (bytes: Buffer) => ({status: SERVING_STATUS[bytes.length >= 2 && bytes[0] === 0x08 ? bytes[1]! : 0] ?? 'UNKNOWN'}),
  root: new protobuf.Root(),
  origin: 'grpc-batch (health check)',
};

/**
 * Codes that prove nothing: the call got no answer in time, the connection failed (or the server
 * says it cannot take calls), or the probe was cancelled. Any other status came from the server.
 */
const NO_ANSWER: ReadonlySet<number> = new Set([Status.DEADLINE_EXCEEDED, Status.UNAVAILABLE, Status.CANCELLED]);

export interface ProbeOptions {
  /** The call's deadline, ms. */
  readonly timeoutMs: number;
  /** The job's metadata, as `run --preflight` sends it. */
  readonly metadata?: grpc.Metadata | undefined;
  /** Cancels the call. */
  readonly signal?: AbortSignal;
}

/**
 * One call that tells whether the backend answers at all, whatever the job's method does: the
 * health check. Resolves `undefined` when the server answered (SERVING, NOT_SERVING, UNIMPLEMENTED,
 * UNAUTHENTICATED...: it is there), else with why not (`DEADLINE_EXCEEDED: Deadline exceeded after
 * 5.001s`). Never rejects.
 */
export async function probeBackend(pool: ChannelPool, options: ProbeOptions): Promise<string | undefined> {
  const {signal} = options;
  if (signal?.aborted) return 'CANCELLED: probe cancelled';
  const inFlight = new Set<CancellableCall>();
  const onAbort = () => {
    for (const call of inFlight) call.cancel();
  };
  signal?.addEventListener('abort', onAbort, {once: true});
  try {
    const call: CallOptions = {deadlineMs: options.timeoutMs, metadata: options.metadata, inFlight};
    const request = HEALTH_CHECK.encodeRequest({});
    // Over the run's own transport: an h2 pool has no grpc-js client to pick.
    const outcome = await (pool.transport === 'h2'
      ? callUnaryH2(pool.pickH2(), HEALTH_CHECK, request, call)
      : callUnary(pool.pick(), HEALTH_CHECK, request, call));
    if (outcome.ok || !NO_ANSWER.has(outcome.code)) return undefined;
    return `${statusName(outcome.code)}: ${cleanDetails(outcome.details)}`;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}
