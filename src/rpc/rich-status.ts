import path from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import {PACKAGE_ROOT} from '../util/paths.js';
import {loadProtoFiles} from '../schema/source-proto.js';
import {messageToJson} from '../codec/response-json.js';

/**
 * gRPC's richer error model: a server may send a serialized `google.rpc.Status` in the
 * `grpc-status-details-bin` trailer, its `details` packed messages such as BadRequest (field
 * violations), ErrorInfo or RetryInfo. grpcurl prints them; grpc-batch puts them, in proto3 JSON,
 * in the results line of the failed record (`statusDetails`), and waits a RetryInfo's
 * `retry_delay` before the next attempt. Detail types are looked up in the job's schema first (a
 * service's own detail messages), then in google/rpc/error_details.proto; one of neither stays
 * packed, `{"@type", "value": <base64>}`.
 */

export const STATUS_DETAILS_KEY = 'grpc-status-details-bin';
const RPC_PROTOS = ['status.proto', 'error_details.proto'].map((file) => path.join(PACKAGE_ROOT, 'proto', 'google', 'rpc', file));
const RETRY_INFO = 'google.rpc.RetryInfo';

export interface StatusDetails {
  /** The google.rpc.Status in proto3 JSON: `{code, message, details: [{"@type", ...}]}`. */
  readonly json: unknown;
  /** A RetryInfo detail's `retry_delay`, in ms. */
  readonly retryDelayMs?: number;
}

let rpcJson: protobuf.INamespace | undefined;
const ready = new WeakSet<protobuf.Root>();

/** Adds the google.rpc types (and the well-known types they use) that `root` lacks. */
function withRpcTypes(root: protobuf.Root): protobuf.Root {
  if (ready.has(root)) return root;
  rpcJson ??= loadProtoFiles(RPC_PROTOS).root.toJSON();
  addMissing(root, rpcJson);
  root.resolveAll();
  ready.add(root);
  return root;
}

function addMissing(ns: protobuf.NamespaceBase, json: protobuf.INamespace): void {
  for (const [name, nested] of Object.entries(json.nested ?? {})) {
    const existing = ns.get(name);
    const isPlainNamespace = !('fields' in nested) && !('values' in nested) && !('methods' in nested) && !('id' in nested);
    if (!existing) ns.addJSON({[name]: nested});
    else if (isPlainNamespace && existing instanceof protobuf.Namespace && !(existing instanceof protobuf.Type))
      addMissing(existing, nested as protobuf.INamespace);
  }
}

/** Decodes a `grpc-status-details-bin` value; undefined when it is not a google.rpc.Status. */
export function decodeStatusDetails(bytes: Buffer, schemaRoot?: protobuf.Root): StatusDetails | undefined {
  const root = withRpcTypes(schemaRoot ?? new protobuf.Root());
  const type = root.lookupType('.google.rpc.Status');
  let status: {details?: {type_url?: string; value?: Uint8Array}[]};
  try {
    status = type.decode(bytes) as typeof status;
  } catch {
    return undefined;
  }
  let retryDelayMs: number | undefined;
  for (const detail of status.details ?? []) {
    const url = detail.type_url ?? '';
    if (url.slice(url.lastIndexOf('/') + 1) !== RETRY_INFO) continue;
    try {
      const info = root.lookupType(`.${RETRY_INFO}`).decode(detail.value ?? new Uint8Array(0)) as {
        retry_delay?: {seconds?: unknown; nanos?: number};
      };
      const delay = info.retry_delay;
      if (delay) retryDelayMs = Math.max(0, Number(String(delay.seconds ?? 0)) * 1000 + (delay.nanos ?? 0) / 1e6);
    } catch {
      // a RetryInfo that does not decode is only not honoured
    }
  }
  return {json: messageToJson(type, status), ...(retryDelayMs !== undefined ? {retryDelayMs} : {})};
}

/** The status details in a call's trailers, if any. */
export function statusDetailsOf(trailers: grpc.Metadata | undefined, schemaRoot?: protobuf.Root): StatusDetails | undefined {
  const value = trailers?.get(STATUS_DETAILS_KEY)[0];
  return Buffer.isBuffer(value) ? decodeStatusDetails(value, schemaRoot) : undefined;
}

/**
 * The backoff a failed call's server asked for (RetryInfo.retry_delay), in ms, to use instead of
 * the computed one; undefined when it asked for none.
 */
export function retryDelayFromStatus(outcome: {readonly ok: boolean; readonly retryDelayMs?: number}): number | undefined {
  return outcome.ok ? undefined : outcome.retryDelayMs;
}
