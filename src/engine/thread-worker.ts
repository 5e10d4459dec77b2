/**
 * A worker thread of a run (`workers: N`): its own channel, its share of the limits, the pipeline
 * (retries, flow control), and the result lines. A record's slot is reused only once the main
 * thread says its result is on disk (`ack`), so after a crash the records sent without a result
 * are at most the job's `concurrency`, as on one thread.
 */
import {parentPort, workerData} from 'node:worker_threads';
import {getErrorMessage} from '../errors.js';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import {createMethodHandle} from '../schema/method-handle.js';
import {servicesOf} from '../schema/schema.js';
import {codeOf, detailsOf, resultOf} from './executor.js';
import {channelPoolFor, pipelineSettings} from './executor-inline.js';
import {Pipeline, type CallReport} from './pipeline.js';
import {RunStats} from './stats.js';
import type {FromWorker, ResultItem, ToWorker, WorkerCall, WorkerInit, WorkerStatus} from './thread-protocol.js';
import type {JobSpec} from '../config/spec.js';

const STATUS_INTERVAL_MS = 250;

const port = parentPort!;
const init = workerData as WorkerInit;
const spec = init.spec as JobSpec;
const post = (message: FromWorker) => port.postMessage(message);

// The schema the main thread loaded (from a proto, a protoset or reflection), not loaded again.
const root = protobuf.Root.fromJSON(init.schema.json as protobuf.INamespace);
const method = createMethodHandle({root, origin: init.schema.origin, services: servicesOf(root)}, spec.method, {
  jsonNames: spec.jsonNames,
  emitDefaults: spec.emitDefaults,
});
const pool = channelPoolFor(spec);
const latencies = new RunStats();
/** Records waiting for the main thread to write their result: line -> release of the slot. */
const waitingForDisk = new Map<number, () => void>();
let outbox: ResultItem[] = [];
let flushScheduled = false;

const flushOutbox = () => {
  flushScheduled = false;
  if (outbox.length === 0) return;
  const items = outbox;
  outbox = [];
  post({type: 'results', items, status: status()});
};
const queue = (item: ResultItem) => {
  outbox.push(item);
  if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(flushOutbox);
  }
};

const pipeline = new Pipeline({
  pool,
  method,
  ...pipelineSettings(spec, init.share),
  onReport: (report: CallReport) => {
    const line = report.call.line;
    if (report.kind === 'unsent') return void queue({line, kind: 'unsent'});
    const text = JSON.stringify(resultOf(line, report.outcome, report.attempts, report.latencyMs));
    queue({line, kind: 'final', code: codeOf(report.outcome), attempts: report.attempts, text, details: detailsOf(report.outcome)});
    return new Promise<void>((resolve) => waitingForDisk.set(line, resolve));
  },
  onAttempt: (latencyMs) => {
    latencies.attempts++;
    latencies.recordLatency(latencyMs);
  },
  onOutage: (event) => post({type: 'outage', event}),
  onFatal: (error) => post({type: 'fatal', message: getErrorMessage(error)}),
});

/** A record as the pipeline takes it: Buffers and Metadata again after the structured clone. */
function plannedCall(call: WorkerCall) {
  const bytes = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  let metadata: grpc.Metadata | undefined;
  if (call.metadata) {
    metadata = new grpc.Metadata();
    for (const [key, values] of Object.entries(call.metadata)) {
      for (const value of Array.isArray(values) ? values : [values])
        metadata.add(key, typeof value === 'string' ? value : bytes(value as Uint8Array));
    }
  }
  return {
    line: call.line,
    request: bytes(call.request),
    ...(metadata ? {metadata} : {}),
    ...(call.deadlineMs !== undefined ? {deadlineMs: call.deadlineMs} : {}),
  };
}

function status(): WorkerStatus {
  const now = pipeline.status();
  return {
    records: now.records,
    calls: now.calls,
    limit: now.limit,
    attempts: latencies.attempts,
    throttled: pipeline.throttled,
    outage: now.outage,
  };
}

const heartbeat = setInterval(() => post({type: 'status', status: status()}), STATUS_INTERVAL_MS);
heartbeat.unref();

port.on('message', (message: ToWorker) => {
  switch (message.type) {
    case 'calls':
      for (const call of message.calls) pipeline.submit(plannedCall(call));
      break;
    case 'ack':
      for (const line of message.lines) {
        const release = waitingForDisk.get(line);
        waitingForDisk.delete(line);
        release?.();
      }
      break;
    case 'stop':
      pipeline.stop();
      break;
    case 'cancel':
      pipeline.cancel();
      break;
    case 'end':
      void pipeline.idle().then(async () => {
        flushOutbox();
        await pipeline.close();
        pool.close();
        clearInterval(heartbeat);
        post({type: 'done', status: status(), latencies: latencies.shareLatencies(), limitRange: pipeline.limitRange()});
        port.close();
      });
      break;
  }
});
