import type {ChannelPool} from '../rpc/channel.js';
import type {MethodHandle} from '../schema/method-handle.js';
import type {OutageEvent} from '../rpc/outage-gate.js';
import {Status} from '../codec/status.js';
import {codeOf, resultOf} from '../engine/executor.js';
import {pipelineSettings} from '../engine/executor-inline.js';
import {Pipeline, type CallReport} from '../engine/pipeline.js';
import {RunStats} from '../engine/stats.js';
import {encodeResult, metadataFromData, type ChunkData, type ChunkProgress} from './chunk.js';
import type {WorkerSpec} from './run-spec.js';

/** What running a chunk came to, before it is stored. */
export interface ChunkOutcome {
  /** One `encodeResult` line per finished record, in completion order. */
  readonly lines: string[];
  readonly ok: number;
  readonly failed: number;
  readonly unsent: number[];
  readonly attempts: number;
  readonly throttled: number;
  readonly latencies: string;
  readonly outage: {readonly pauses: number; readonly pausedMs: number; readonly gaveUp?: string};
  readonly limitRange?: {readonly min: number; readonly mean: number; readonly max: number};
}

/** A chunk being run: the same `Pipeline` as a local run, with the chunk's share of the limits. */
export class ChunkRun {
  readonly #pipeline: Pipeline;
  readonly #data: ChunkData;
  readonly #lines: string[] = [];
  readonly #unsent: number[] = [];
  readonly #latencies = new RunStats();
  #ok = 0;
  #failed = 0;
  #gaveUp: string | undefined;
  #fatal: unknown;
  readonly #jobMetadata: Readonly<Record<string, string>>;
  readonly #canSend: (() => boolean) | undefined;

  /**
   * `hooks.canSend` is asked before each record is handed to the calls: false (the chunk's lock may
   * be lost) stops the chunk there, the records not handed in yet left unsent.
   */
  constructor(
    data: ChunkData,
    spec: WorkerSpec,
    method: MethodHandle,
    pool: ChannelPool,
    hooks: {readonly onOutage?: (event: OutageEvent) => void; readonly canSend?: () => boolean} = {},
  ) {
    const onOutage = hooks.onOutage;
    this.#canSend = hooks.canSend;
    this.#data = data;
    this.#jobMetadata = spec.metadata;
    this.#pipeline = new Pipeline({
      pool,
      method,
      ...pipelineSettings(spec, {concurrency: data.concurrency, rps: data.rps}),
      onReport: (report: CallReport) => {
        const line = report.call.line;
        if (report.kind === 'unsent') return void this.#unsent.push(line);
        const code = codeOf(report.outcome);
        if (code === Status.OK) this.#ok++;
        else this.#failed++;
        this.#lines.push(
          encodeResult(line, code, report.attempts, JSON.stringify(resultOf(line, report.outcome, report.attempts, report.latencyMs))),
        );
      },
      onAttempt: (latencyMs) => {
        this.#latencies.attempts++;
        this.#latencies.recordLatency(latencyMs);
      },
      onOutage: (event) => {
        if (event.type === 'gave-up') {
          this.#gaveUp = event.reason;
          this.#pipeline.stop();
        }
        onOutage?.(event);
      },
      onFatal: (error) => {
        this.#fatal ??= error;
        this.#pipeline.cancel();
      },
    });
  }

  /** The run the chunk is of. */
  get runId(): string {
    return this.#data.run;
  }

  /** Whether some record got an OK: the backend was reachable from here. */
  get reachedBackend(): boolean {
    return this.#ok > 0;
  }

  /** Sends every record of the chunk and resolves once each has an outcome (or none: unsent). */
  async run(): Promise<ChunkOutcome> {
    const {lines, requests} = this.#data;
    try {
      for (let i = 0; i < lines.length; i++) {
        if (!this.#pipeline.hasRoom) await this.#pipeline.room();
        if (this.#canSend && !this.#canSend()) this.#pipeline.stop();
        if (!this.#pipeline.hasRoom) {
          // Stopped: the records not handed in yet get no outcome.
          for (let j = i; j < lines.length; j++) this.#unsent.push(lines[j]!);
          break;
        }
        const metadata = this.#data.metadata?.[i];
        const deadlineMs = this.#data.deadlines?.[i];
        this.#pipeline.submit({
          line: lines[i]!,
          request: Buffer.from(requests[i]!, 'base64'),
          ...(metadata ? {metadata: metadataFromData(metadata, this.#jobMetadata)} : {}),
          ...(deadlineMs !== undefined && deadlineMs !== null ? {deadlineMs} : {}),
        });
      }
      await this.#pipeline.idle();
    } finally {
      this.#pipeline.close();
    }
    if (this.#fatal) throw this.#fatal;
    const outage = this.#pipeline.status().outage;
    const limitRange = this.#pipeline.limitRange();
    return {
      lines: this.#lines,
      ok: this.#ok,
      failed: this.#failed,
      unsent: this.#unsent.sort((a, b) => a - b),
      attempts: this.#latencies.attempts,
      throttled: this.#pipeline.throttled,
      latencies: this.#latencies.shareLatencies().histogram,
      outage: {pauses: outage.pauses, pausedMs: Math.round(outage.pausedMs), ...(this.#gaveUp ? {gaveUp: this.#gaveUp} : {})},
      ...(limitRange ? {limitRange} : {}),
    };
  }

  /** No first attempts from now on: records not sent yet leave unsent; calls and retries in progress finish. */
  stop(): void {
    this.#pipeline.stop();
  }

  /** Cuts the calls in flight too. */
  cancel(): void {
    this.#pipeline.cancel();
  }

  progress(): ChunkProgress {
    const now = this.#pipeline.status();
    return {
      done: this.#ok + this.#failed,
      calls: now.calls,
      limit: now.limit,
      attempts: this.#latencies.attempts,
      paused: now.outage.paused,
      pausedForMs: Math.round(now.outage.pausedForMs),
      ...(now.outage.reason ? {reason: now.outage.reason} : {}),
    };
  }
}
