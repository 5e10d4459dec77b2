import {createServer, type Server} from 'node:http';
import type {AddressInfo} from 'node:net';
import {Counter, Gauge, Registry, collectDefaultMetrics} from 'prom-client';
import {getErrorMessage, UsageError} from '../errors.js';
import {parseOpsAddress} from '../ops-http.js';
import type {ChunkEvent, ChunkWorker} from './chunk-worker.js';

/** A worker's Prometheus metrics, fed by its chunk events. */
export class WorkerMetrics {
  readonly registry = new Registry();
  readonly #chunks: Counter;
  readonly #records: Counter;
  readonly #attempts: Counter;

  constructor(worker: () => ChunkWorker | undefined) {
    const registers = [this.registry];
    collectDefaultMetrics({register: this.registry, prefix: 'grpc_batch_worker_'});
    this.#chunks = new Counter({name: 'grpc_batch_worker_chunks_total', help: 'Chunks by outcome (done, failed, handed-back, lost: its lock was lost, its work thrown away).', labelNames: ['outcome'], registers});
    this.#records = new Counter({name: 'grpc_batch_worker_records_total', help: 'Records of finished chunks by outcome (ok, failed, unsent).', labelNames: ['outcome'], registers});
    this.#attempts = new Counter({name: 'grpc_batch_worker_call_attempts_total', help: 'Call attempts, retries included.', registers});
    new Gauge({
      name: 'grpc_batch_worker_chunks_active', help: 'Chunks running now.', registers,
      collect() {
        this.set(worker()?.activeChunks ?? 0);
      },
    });
  }

  onChunk(event: ChunkEvent): void {
    if (event.type === 'started') return;
    this.#chunks.inc({outcome: event.type});
    if (event.type === 'lost') this.#attempts.inc(event.attempts);
    if (event.type !== 'done') return;
    this.#records.inc({outcome: 'ok'}, event.ok);
    this.#records.inc({outcome: 'failed'}, event.failed);
    this.#records.inc({outcome: 'unsent'}, event.unsent);
    this.#attempts.inc(event.attempts);
  }
}

/** `grpc-batch worker --http`: `GET /healthz` (200 while taking chunks) and `GET /metrics`. */
export async function startWorkerHttp(address: string, worker: () => ChunkWorker | undefined, metrics: WorkerMetrics): Promise<{address: string; close(): Promise<void>}> {
  const {host, port} = parseOpsAddress(address);
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const send = (status: number, body: string, type = 'text/plain; charset=utf-8') => {
      res.writeHead(status, {'content-type': type});
      res.end(body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'use GET\n');
    if (url.pathname === '/healthz') return worker()?.isRunning ? send(200, 'ok\n') : send(503, 'not taking chunks\n');
    if (url.pathname === '/metrics') {
      metrics.registry.metrics().then((text) => send(200, text, metrics.registry.contentType), (error: unknown) => send(500, `${getErrorMessage(error)}\n`));
      return;
    }
    send(404, 'not found: GET /healthz, GET /metrics\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) => reject(new UsageError(`--http ${address}: cannot listen: ${getErrorMessage(error)}`, {cause: error})));
    server.listen(port, host, () => resolve());
  });
  const bound = server.address() as AddressInfo;
  return {
    address: `${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}`,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
