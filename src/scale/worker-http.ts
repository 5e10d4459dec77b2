import {Counter, Gauge, Registry, collectDefaultMetrics} from 'prom-client';
import {startOpsEndpoint, type OpsServer} from '../ops/http.js';
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
    this.#chunks = new Counter({
      name: 'grpc_batch_worker_chunks_total',
      help: 'Chunks by outcome (done, failed, handed-back, lost: its lock was lost, its work thrown away).',
      labelNames: ['outcome'],
      registers,
    });
    this.#records = new Counter({
      name: 'grpc_batch_worker_records_total',
      help: 'Records of finished chunks by outcome (ok, failed, unsent).',
      labelNames: ['outcome'],
      registers,
    });
    this.#attempts = new Counter({name: 'grpc_batch_worker_call_attempts_total', help: 'Call attempts, retries included.', registers});
    new Gauge({
      name: 'grpc_batch_worker_chunks_active',
      help: 'Chunks running now.',
      registers,
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
export function startWorkerHttp(address: string, worker: () => ChunkWorker | undefined, metrics: WorkerMetrics): Promise<OpsServer> {
  return startOpsEndpoint({
    address,
    health: () => worker()?.isRunning || 'not taking chunks',
    metrics: {render: () => metrics.registry.metrics(), contentType: metrics.registry.contentType},
  });
}
