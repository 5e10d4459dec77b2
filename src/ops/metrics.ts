import {Counter, Gauge, Histogram, Registry, collectDefaultMetrics} from 'prom-client';
import type {Scheduler} from '../scheduler/scheduler.js';

/** Latency buckets in seconds: 1 ms to 60 s. */
const LATENCY_BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/**
 * The daemon's Prometheus metrics, in a registry of their own, fed by the scheduler's events.
 * Per-call numbers come from each finished record (`run:result`): a record is one logical call,
 * its retries included; `grpc_batch_call_attempts_total` counts every attempt at the end of a run.
 */
export class OpsMetrics {
  readonly registry = new Registry();
  readonly #inFlight = new Map<string, {job: string; inFlight: number; limit: number; paused: boolean}>();

  constructor(scheduler: Scheduler, options: {processMetrics?: boolean} = {}) {
    const registers = [this.registry];
    if (options.processMetrics ?? true) collectDefaultMetrics({register: this.registry, prefix: 'grpc_batch_'});
    const runs = new Counter({
      name: 'grpc_batch_runs_total',
      help: 'Runs by job and outcome (succeeded, failed, cancelled, error, skipped).',
      labelNames: ['job', 'outcome'],
      registers,
    });
    const calls = new Counter({
      name: 'grpc_batch_calls_total',
      help: 'Finished records by job and final status code name (INVALID: not sent).',
      labelNames: ['job', 'code'],
      registers,
    });
    const attempts = new Counter({
      name: 'grpc_batch_call_attempts_total',
      help: 'Call attempts, retries included, by job (added when a run ends).',
      labelNames: ['job'],
      registers,
    });
    const latency = new Histogram({
      name: 'grpc_batch_call_duration_seconds',
      help: 'Time per record, retries and backoff included, by job.',
      labelNames: ['job'],
      buckets: LATENCY_BUCKETS_S,
      registers,
    });
    const inFlight = new Gauge({
      name: 'grpc_batch_calls_in_flight',
      help: 'Calls in flight by job (sampled every progress interval).',
      labelNames: ['job'],
      registers,
    });
    const limit = new Gauge({
      name: 'grpc_batch_concurrency_limit',
      help: 'Calls allowed in flight by job now: the concurrency cap, or less under adaptive or rampUp (sampled every progress interval).',
      labelNames: ['job'],
      registers,
    });
    const waiting = new Gauge({
      name: 'grpc_batch_backend_waiting',
      help: '1 while a run of the job waits for an unreachable backend (no record is sent or failed meanwhile).',
      labelNames: ['job'],
      registers,
    });
    const lastSuccess = new Gauge({
      name: 'grpc_batch_last_success_timestamp_seconds',
      help: 'When the last run of the job that succeeded ended.',
      labelNames: ['job'],
      registers,
    });
    const running = new Gauge({
      name: 'grpc_batch_runs_running',
      help: 'Runs in progress by job.',
      labelNames: ['job'],
      registers,
      collect() {
        this.reset();
        for (const job of scheduler.jobs()) this.set({job: job.name}, job.running);
      },
    });
    const nextFire = new Gauge({
      name: 'grpc_batch_next_fire_timestamp_seconds',
      help: 'When the job fires next (absent when it is not scheduled).',
      labelNames: ['job'],
      registers,
      collect() {
        this.reset();
        for (const job of scheduler.jobs()) if (job.nextFireAt !== undefined) this.set({job: job.name}, job.nextFireAt / 1000);
      },
    });
    void running;
    void nextFire;
    const setInFlight = (job: string) => {
      const runs = [...this.#inFlight.values()].filter((r) => r.job === job);
      inFlight.set(
        {job},
        runs.reduce((n, r) => n + r.inFlight, 0),
      );
      limit.set(
        {job},
        runs.reduce((n, r) => n + r.limit, 0),
      );
      waiting.set({job}, runs.some((r) => r.paused) ? 1 : 0);
    };

    scheduler.on('run:result', ({job, result}) => {
      calls.inc({job, code: result.status});
      if ('latencyMs' in result) latency.observe({job}, result.latencyMs / 1000);
    });
    scheduler.on('run:progress', ({job, runId, progress}) => {
      this.#inFlight.set(runId, {job, inFlight: progress.inFlight, limit: progress.limit, paused: progress.waiting !== undefined});
      setInFlight(job);
    });
    scheduler.on('run:skipped', ({job}) => runs.inc({job, outcome: 'skipped'}));
    scheduler.on('run:finished', ({job, runId, status, summary}) => {
      runs.inc({job, outcome: status});
      if (summary) attempts.inc({job}, summary.attempts);
      if (status === 'succeeded') lastSuccess.set({job}, Date.now() / 1000);
      this.#inFlight.delete(runId);
      setInFlight(job);
    });
  }

  /** The metrics in Prometheus text format. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
