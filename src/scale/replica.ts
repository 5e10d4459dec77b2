import type {Redis} from 'ioredis';
import type {Logger} from '../util/log.js';
import type {Scheduler} from '../scheduler/scheduler.js';
import type {SchedulerOptions} from '../scheduler/types.js';
import {ChunkWorker} from './chunk-worker.js';
import {runQueued} from './coordinator.js';
import {connectRedis, type QueueTarget} from './redis.js';
import {SharedTicks} from './ticks.js';

export interface ReplicaOptions {
  /** Chunks this replica runs at once, of any run; 0 = none (it only schedules and coordinates). @default 8 */
  readonly chunks: number;
  readonly lockDurationMs?: number;
  readonly chunkSize?: number;
  readonly logger?: Logger;
}

/**
 * `daemon --redis`: one replica of many. Its scheduler's ticks go through the shared tick queue
 * (each runs once, on one replica), its runs are coordinated through the chunk queue, and it runs
 * chunks of any run itself, as a `grpc-batch worker` does.
 */
export class Replica {
  readonly #redis: Redis;
  readonly #target: QueueTarget;
  readonly #options: ReplicaOptions;
  readonly #chunks: ChunkWorker | undefined;
  #ticks: SharedTicks | undefined;

  private constructor(redis: Redis, target: QueueTarget, options: ReplicaOptions) {
    this.#redis = redis;
    this.#target = target;
    this.#options = options;
    this.#chunks =
      options.chunks > 0
        ? new ChunkWorker({
            redis,
            prefix: target.prefix,
            chunks: options.chunks,
            ...(options.lockDurationMs ? {lockDurationMs: options.lockDurationMs} : {}),
            ...(options.logger ? {logger: options.logger.child({component: 'worker'})} : {}),
          })
        : undefined;
  }

  static async connect(target: QueueTarget, options: ReplicaOptions): Promise<Replica> {
    return new Replica(await connectRedis(target, options.logger), target, options);
  }

  /** What the scheduler needs: ticks go to the shared queue, runs are coordinated through Redis. */
  schedulerOptions(): Pick<SchedulerOptions, 'shared' | 'runner'> {
    return {
      shared: {fire: (job, trigger, scheduledAt, overlap) => this.#ticks?.fire(job, trigger, scheduledAt, overlap)},
      runner: (job, options) =>
        runQueued(job, options, {
          ...this.#target,
          redis: this.#redis,
          ...(this.#options.chunkSize ? {chunkSize: this.#options.chunkSize} : {}),
          ...(this.#options.logger ? {logger: this.#options.logger} : {}),
        }),
    };
  }

  /** Starts taking ticks for `scheduler`; call before `scheduler.start()`. */
  async attach(scheduler: Scheduler): Promise<void> {
    this.#ticks = new SharedTicks({
      redis: this.#redis,
      prefix: this.#target.prefix,
      host: scheduler,
      ...(this.#options.logger ? {logger: this.#options.logger} : {}),
      ...(this.#options.lockDurationMs ? {lockDurationMs: this.#options.lockDurationMs} : {}),
    });
    scheduler.once('scheduler:closing', () => void this.#ticks?.pause().catch(() => undefined));
    await Promise.all([this.#ticks.waitUntilReady(), this.#chunks?.waitUntilReady()]);
  }

  /** After the scheduler closed: stops taking ticks and chunks (running chunks get `graceMs`), and disconnects. */
  async close(graceMs: number): Promise<void> {
    await this.#ticks?.close().catch(() => undefined);
    await this.#chunks?.close(graceMs).catch(() => undefined);
    await this.#redis.quit().catch(() => undefined);
  }
}
