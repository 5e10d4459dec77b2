/**
 * How a method streams, and which of them grpc-batch can run:
 * - `unary`: one call per record.
 * - `client-streaming` (`stream Req` -> `Resp`): records go in batches, one call per batch, and
 *   the batch's one response is every record's (stream-client.ts).
 * - `bidi` (`stream Req` -> `stream Resp`): records go as messages over a few long-lived streams,
 *   one response per request, in order (stream-bidi.ts).
 * - `server-streaming` (`Req` -> `stream Resp`): one call per record; its replies, in order, are
 *   the record's `response` (an array), written once the stream ends (call.ts `callServerStream`).
 */
export type MethodKind = 'unary' | 'client-streaming' | 'server-streaming' | 'bidi';

export function methodKind(requestStream: boolean, responseStream: boolean): MethodKind {
  if (requestStream && responseStream) return 'bidi';
  if (requestStream) return 'client-streaming';
  if (responseStream) return 'server-streaming';
  return 'unary';
}

/** The job keys that depend on the method's kind. */
export interface StreamingKeys {
  readonly streams?: number | undefined;
  readonly batchSize?: number | undefined;
  readonly maxRepliesPerRecord?: number | undefined;
  readonly concurrency: number;
}

/**
 * What is wrong with running `method` with these keys: one `[key, message]` per problem, empty
 * when the job can run. `maxRepliesPerRecord` is for server-streaming methods only, `streams` for bidi methods only
 * and `batchSize` for client-streaming ones (a key that would be ignored is an error, not a
 * silent no-op); a batch larger than `concurrency` could never fill.
 */
export function checkMethodKind(
  method: {readonly name: string; readonly kind: MethodKind},
  keys: StreamingKeys,
): [key: string, message: string][] {
  const issues: [string, string][] = [];
  if (keys.maxRepliesPerRecord !== undefined && method.kind !== 'server-streaming') {
    issues.push([
      'maxRepliesPerRecord',
      `applies to server-streaming methods only; "${method.name}" is ${article(method.kind)} method: remove the key`,
    ]);
  }
  if (keys.streams !== undefined && method.kind !== 'bidi') {
    issues.push(['streams', `applies to bidi-streaming methods only; "${method.name}" is ${article(method.kind)} method: remove the key`]);
  }
  if (keys.batchSize !== undefined && method.kind !== 'client-streaming') {
    issues.push([
      'batchSize',
      `applies to client-streaming methods only; "${method.name}" is ${article(method.kind)} method: remove the key`,
    ]);
  }
  if (keys.batchSize !== undefined && method.kind === 'client-streaming' && keys.batchSize > keys.concurrency) {
    issues.push([
      'batchSize',
      `expected at most concurrency (${keys.concurrency}): a batch is at most the records in flight, got ${keys.batchSize}; raise concurrency to ${keys.batchSize} or more (a multiple, for several batches in flight)`,
    ]);
  }
  return issues;
}

function article(kind: MethodKind): string {
  return kind === 'unary' ? 'a unary' : kind === 'bidi' ? 'a bidi-streaming' : `a ${kind}`;
}
