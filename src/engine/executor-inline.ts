import {ChannelPool} from '../rpc/channel.js';
import type {MethodHandle} from '../schema/method-handle.js';
import {buildMetadata} from '../rpc/metadata.js';
import type {JobSpec} from '../config/spec.js';
import {codeOf, detailsOf, resultOf, type Executor, type ExecutorEvents, type RecordCall} from './executor.js';
import {Pipeline, type CallReport, type PipelineStatus} from './pipeline.js';
import {RunStats} from './stats.js';

/** The share of a job's limits one executor runs with (a worker thread's part of the totals). */
export interface Share {
  readonly concurrency: number;
  readonly rps: number;
}

/** The pipeline options a job's spec gives, for a share of its limits. */
export function pipelineSettings(
  spec: Pick<
    JobSpec,
    | 'rampUpMs'
    | 'adaptive'
    | 'retry'
    | 'deadlineMs'
    | 'metadata'
    | 'waitForReady'
    | 'maxOutageMs'
    | 'streams'
    | 'batchSize'
    | 'concurrency'
    | 'recordMetadata'
    | 'maxRepliesPerRecord'
  >,
  share: Share,
) {
  return {
    concurrency: share.concurrency,
    rps: share.rps,
    rampUpMs: spec.rampUpMs,
    adaptive: spec.adaptive,
    retry: spec.retry,
    deadlineMs: spec.deadlineMs,
    metadata: buildMetadata(spec.metadata),
    waitForReady: spec.waitForReady,
    recordMetadata: spec.recordMetadata,
    maxOutageMs: spec.maxOutageMs,
    // A worker's share of the job's streams; a batch is at most the share's records in flight.
    streams: spec.streams === undefined ? undefined : Math.max(1, Math.round((spec.streams * share.concurrency) / spec.concurrency)),
    batchSize: spec.batchSize === undefined ? undefined : Math.min(spec.batchSize, share.concurrency),
    maxReplies: spec.maxRepliesPerRecord,
  };
}

export function channelPoolFor(
  spec: Pick<JobSpec, 'target' | 'tls' | 'channelOptions' | 'channels'> & {readonly transport?: JobSpec['transport'] | undefined},
): ChannelPool {
  return new ChannelPool({
    target: spec.target,
    tls: spec.tls,
    channelOptions: spec.channelOptions,
    channels: spec.channels,
    transport: spec.transport,
  });
}

/** Runs the records on the main thread, over the run's one channel pool. */
export class InlineExecutor implements Executor {
  readonly #pipeline: Pipeline;
  readonly #pool: ChannelPool;
  readonly #latencies = new RunStats();

  /** `beforeSend`: flush the results of the records that freed slots before the slots are reused. */
  constructor(spec: JobSpec, method: MethodHandle, events: ExecutorEvents, beforeSend: () => void) {
    this.#pool = channelPoolFor(spec);
    const onReport = (report: CallReport): void | Promise<void> => {
      const call = report.call as RecordCall;
      if (report.kind === 'unsent') return events.onUnsent(call);
      return events.onFinal(
        call,
        codeOf(report.outcome),
        report.attempts,
        resultOf(call.line, report.outcome, report.attempts, report.latencyMs),
        detailsOf(report.outcome),
      );
    };
    this.#pipeline = new Pipeline({
      pool: this.#pool,
      method,
      ...pipelineSettings(spec, {concurrency: spec.concurrency, rps: spec.rps}),
      beforeSend,
      onReport,
      onAttempt: (latencyMs) => {
        this.#latencies.attempts++;
        this.#latencies.recordLatency(latencyMs);
      },
      onOutage: events.onOutage,
      onFatal: events.onFatal,
    });
  }

  get hasRoom(): boolean {
    return this.#pipeline.hasRoom;
  }

  room(): Promise<void> {
    return this.#pipeline.room();
  }

  submit(call: RecordCall): void {
    this.#pipeline.submit(call);
  }

  idle(): Promise<void> {
    return this.#pipeline.idle();
  }

  stop(): void {
    this.#pipeline.stop();
  }

  cancel(): void {
    this.#pipeline.cancel();
  }

  async close(): Promise<void> {
    await this.#pipeline.close();
    this.#pool.close();
  }

  status(): PipelineStatus {
    return this.#pipeline.status();
  }

  get attempts(): number {
    return this.#latencies.attempts;
  }

  get throttled(): number {
    return this.#pipeline.throttled;
  }

  limitRange(): {min: number; mean: number; max: number} | undefined {
    return this.#pipeline.limitRange();
  }

  collectLatencies(into: RunStats): void {
    into.add(this.#latencies);
  }
}
