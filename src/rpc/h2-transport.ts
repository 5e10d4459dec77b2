import * as grpc from '@grpc/grpc-js';
import type {CallOptions, CallOutcome, PerCallOptions} from './call.js';
import type {TlsSpec} from './credentials.js';
import type {H2Channel, H2ChannelOptions} from './h2-channel.js';
import {H2UnaryCall} from './h2-call.js';
import {parseH2Target} from './h2-target.js';
import {encodeLiteral} from './hpack.js';
import type {MethodHandle} from '../schema/method-handle.js';

/**
 * The `h2` transport (job key `transport: h2`, flag `--transport h2`): unary calls over
 * grpc-batch's own HTTP/2 client (h2-frames.ts, hpack.ts, h2-writer.ts, h2-stream.ts, h2-connection.ts, h2-target.ts, h2-channel.ts,
 * h2-call.ts) instead of grpc-js and `node:http2`. Same `CallOutcome`, same codes.
 */

/** The transports a job may choose. */
export const TRANSPORTS = ['grpc-js', 'h2'] as const;
export type TransportName = (typeof TRANSPORTS)[number];
export const DEFAULT_TRANSPORT: TransportName = 'grpc-js';

/** grpc-js's default receive limit (4 MiB); sends are not limited by default. */
export const DEFAULT_MAX_RECEIVE_BYTES = 4 * 1024 * 1024;

/** Channel options `h2` reads, and those it may ignore because a client channel ignores them too. */
const H2_OPTIONS = new Set([
  'grpc.max_send_message_length',
  'grpc.max_receive_message_length',
  'grpc.initial_reconnect_backoff_ms',
  'grpc.max_reconnect_backoff_ms',
  'grpc.keepalive_time_ms',
  'grpc.keepalive_timeout_ms',
  'grpc.keepalive_permit_without_calls',
  'grpc.ssl_target_name_override',
  'grpc.default_authority',
  'grpc.primary_user_agent',
  'grpc.secondary_user_agent',
  'grpc.use_local_subchannel_pool',
  'grpc-batch.channel_index',
  // Read by a grpc-js server only: a client channel ignores them whatever the transport.
  'grpc.max_concurrent_streams',
  'grpc.max_connection_age_ms',
  'grpc.max_connection_age_grace_ms',
  'grpc.max_connection_idle_ms',
  'grpc.server_call_metric_recording',
]);

/**
 * Why `h2` cannot run a job with this target and these channel options, one `[key, message]` per
 * reason; empty when it can. Streaming methods are checked once the method is known (`checkH2Method`).
 */
export function checkH2Job(target: string, channelOptions: Readonly<Record<string, unknown>>): [key: string, message: string][] {
  const issues: [string, string][] = [];
  const parsed = parseH2Target(target);
  if (typeof parsed === 'string') issues.push(['target', parsed]);
  for (const key of Object.keys(channelOptions)) {
    if (!H2_OPTIONS.has(key)) {
      issues.push([
        `channelOptions.${key}`,
        `the h2 transport does not support this channel option; remove it, or use transport: grpc-js (h2 reads ${[...H2_OPTIONS].filter((k) => k.startsWith('grpc.') && !k.includes('connection_') && k !== 'grpc.max_concurrent_streams' && k !== 'grpc.server_call_metric_recording' && k !== 'grpc.use_local_subchannel_pool').join(', ')})`,
      ]);
    }
  }
  return issues;
}

/** Why `h2` cannot call this method, or undefined. */
export function checkH2Method(method: {readonly name: string; readonly kind: string}): string | undefined {
  if (method.kind === 'unary') return undefined;
  return `the h2 transport sends unary calls only; "${method.name}" is a ${method.kind} method: use transport: grpc-js`;
}

/** Channel settings of the `h2` transport from a job's target, TLS and (normalised) channel options. */
export function h2ChannelOptions(target: string, tls: TlsSpec | undefined, options: Readonly<Record<string, unknown>>): H2ChannelOptions {
  const number = (key: string): number | undefined => (typeof options[key] === 'number' ? (options[key] as number) : undefined);
  const serverName =
    typeof options['grpc.ssl_target_name_override'] === 'string' ? (options['grpc.ssl_target_name_override'] as string) : undefined;
  return {
    target,
    tls: tls ? {...tls, ...(serverName && !tls.serverName ? {serverName} : {})} : undefined,
    ...(number('grpc.initial_reconnect_backoff_ms') !== undefined ? {initialBackoffMs: number('grpc.initial_reconnect_backoff_ms')!} : {}),
    ...(number('grpc.max_reconnect_backoff_ms') !== undefined ? {maxBackoffMs: number('grpc.max_reconnect_backoff_ms')!} : {}),
    ...(number('grpc.keepalive_time_ms') !== undefined ? {keepaliveTimeMs: number('grpc.keepalive_time_ms')!} : {}),
    ...(number('grpc.keepalive_timeout_ms') !== undefined ? {keepaliveTimeoutMs: number('grpc.keepalive_timeout_ms')!} : {}),
    ...(options['grpc.keepalive_permit_without_calls'] === 1 ? {keepaliveWithoutCalls: true} : {}),
  };
}

/** What every call of a channel shares: the header block parts that do not change. */
export interface H2CallContext {
  readonly channel: H2Channel;
  /** -1 = no limit. */
  readonly maxSendBytes: number;
  /** -1 = no limit. */
  readonly maxReceiveBytes: number;
  readonly authority: string;
  readonly userAgent: string;
  /** Header blocks by method path, then by metadata object (the job's, shared by every call). */
  readonly heads: Map<string, WeakMap<grpc.Metadata, RequestHead>>;
}

/** A request header block and its header list size (RFC 9113 section 6.5.2), `grpc-timeout` counted at its largest. */
export interface RequestHead {
  readonly bytes: Buffer;
  readonly listSize: number;
}

/** Header list size of a field (its name and value bytes, plus 32). */
const FIELD_OVERHEAD = 32;
/** A `grpc-timeout` field at its largest: the name, 8 digits and a unit. */
const TIMEOUT_LIST_SIZE = 'grpc-timeout'.length + 9 + FIELD_OVERHEAD;

const NO_METADATA = new grpc.Metadata();

export function createH2Context(channel: H2Channel, options: Readonly<Record<string, unknown>>): H2CallContext {
  const number = (key: string, fallback: number): number => (typeof options[key] === 'number' ? (options[key] as number) : fallback);
  const agent = [options['grpc.primary_user_agent'], 'grpc-batch-h2/1', options['grpc.secondary_user_agent']]
    .filter((a) => typeof a === 'string' && a !== '')
    .join(' ');
  return {
    channel,
    maxSendBytes: number('grpc.max_send_message_length', -1),
    maxReceiveBytes: number('grpc.max_receive_message_length', DEFAULT_MAX_RECEIVE_BYTES),
    authority:
      typeof options['grpc.default_authority'] === 'string' ? (options['grpc.default_authority'] as string) : channel.target.authority,
    userAgent: agent,
    heads: new Map(),
  };
}

/**
 * The request header block of a method, HPACK-encoded once: static-table indexes and literals
 * without indexing, then the metadata (`-bin` values in base64). `grpc-timeout` is added per call.
 */
export function requestHead(context: H2CallContext, path: string, metadata: grpc.Metadata): RequestHead {
  let byMetadata = context.heads.get(path);
  if (!byMetadata) context.heads.set(path, (byMetadata = new WeakMap()));
  let head = byMetadata.get(metadata);
  if (head) return head;
  const out: number[] = [0x83, context.channel.secure ? 0x87 : 0x86]; // :method POST, :scheme https / http
  let listSize =
    ':method'.length + 'POST'.length + ':scheme'.length + (context.channel.secure ? 5 : 4) + 2 * FIELD_OVERHEAD + TIMEOUT_LIST_SIZE;
  const field = (name: string, value: string) => {
    encodeLiteral(out, name, value);
    listSize += Buffer.byteLength(name) + Buffer.byteLength(value) + FIELD_OVERHEAD;
  };
  field(':path', path);
  field(':authority', context.authority);
  field('content-type', 'application/grpc');
  field('te', 'trailers');
  field('user-agent', context.userAgent);
  field('grpc-accept-encoding', 'identity');
  for (const [key, values] of Object.entries(metadata.toJSON())) {
    for (const value of values) field(key, Buffer.isBuffer(value) ? value.toString('base64') : String(value));
  }
  head = {bytes: Buffer.from(out), listSize};
  byMetadata.set(metadata, head);
  return head;
}

/** One unary call over `h2`: the same contract as `callUnary` over grpc-js. */
export function callUnaryH2(
  context: H2CallContext,
  method: MethodHandle,
  request: Buffer,
  options: CallOptions,
  perCall: PerCallOptions = {},
): Promise<CallOutcome> {
  return new Promise((resolve) => {
    if (context.maxSendBytes >= 0 && request.length > context.maxSendBytes) {
      resolve({
        ok: false,
        code: grpc.status.RESOURCE_EXHAUSTED,
        details: `Sent message larger than max (${request.length} vs. ${context.maxSendBytes})`,
        latencyMs: 0,
      });
      return;
    }
    const deadlineMs = perCall.deadlineMs ?? options.deadlineMs;
    const head = requestHead(context, method.path, perCall.metadata ?? options.metadata ?? NO_METADATA);
    const call = new H2UnaryCall(
      context.channel,
      method,
      request,
      {
        head: head.bytes,
        headerListSize: head.listSize,
        deadline: deadlineMs > 0 ? Date.now() + deadlineMs : Infinity,
        waitForReady: options.waitForReady ?? false,
        recordMetadata: options.recordMetadata ?? false,
        maxReceiveBytes: context.maxReceiveBytes,
        inFlight: options.inFlight,
      },
      resolve,
    );
    call.start();
  });
}
