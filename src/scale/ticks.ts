import {hostname} from 'node:os';
import {randomBytes} from 'node:crypto';
import {Queue, WaitingError, Worker, type Job, type JobsOptions} from 'bullmq';
import type {Redis} from 'ioredis';
import {getErrorMessage} from '../errors.js';
import type {OverlapPolicy} from '../config/schedule-spec.js';
import type {Logger} from '../util/log.js';
import type {RunTrigger} from '../state/store.js';
import {TICKS_QUEUE} from './redis.js';

/** A tick as the queue holds it. */
interface TickData {
  readonly job: string;
  readonly trigger: RunTrigger;
  readonly scheduledAt: number | undefined;
  /** Set by the replica that runs it: the run a replica left when it died (it resumes it at restart). */
  readonly runId?: string;
  readonly replica?: string;
}

/** What the daemon's scheduler does for the shared ticks (see `Scheduler#runShared`). */
export interface SharedTickHost {
  /** Starts the run of a tick taken from the queue and resolves when it is recorded. */
  runShared(
    job: string,
    trigger: RunTrigger,
    scheduledAt: number | undefined,
    onStarted: (runId: string) => void,
  ): Promise<'ran' | 'closing'>;
  /** Records a tick skipped because another replica runs the job (overlap: skip or queue). */
  skipShared(job: string, trigger: RunTrigger, scheduledAt: number | undefined, reason: string): void;
}

/** Ticks done are kept this long, so a replica that fires (or catches up) the same tick later adds nothing. */
const KEEP_TICKS_S = 24 * 3600;
/** Runs of different jobs one replica drives at once. */
const TICK_CONCURRENCY = 64;

/**
 * Daemon replicas: each keeps its own timer and state database and, on every tick, adds a job
 * `tick-<job>-<scheduledAtMs>` to the shared queue; the adds of the other replicas for that tick
 * are no-ops, so a tick runs once, on whichever replica takes it. Overlap across replicas is
 * BullMQ deduplication on the job's name: `skip` drops a tick while a run of the job is queued or
 * running anywhere, `queue` keeps one tick waiting (the latest) and starts it once the run ends.
 */
export class SharedTicks {
  readonly #queue: Queue<TickData>;
  readonly #worker: Worker<TickData>;
  readonly #host: SharedTickHost;
  readonly #log: Logger | undefined;
  readonly #name = `${hostname()} pid ${process.pid}`;

  constructor(options: {redis: Redis; prefix: string; host: SharedTickHost; logger?: Logger; lockDurationMs?: number}) {
    this.#host = options.host;
    this.#log = options.logger;
    this.#queue = new Queue<TickData>(TICKS_QUEUE, {connection: options.redis, prefix: options.prefix});
    this.#worker = new Worker<TickData>(TICKS_QUEUE, (job, token) => this.#process(job, token), {
      connection: options.redis,
      prefix: options.prefix,
      concurrency: TICK_CONCURRENCY,
      autorun: true,
      ...(options.lockDurationMs ? {lockDuration: options.lockDurationMs, stalledInterval: options.lockDurationMs} : {}),
    });
    this.#worker.on('error', (error) =>
      this.#log?.warn({event: 'ticks:error', error: getErrorMessage(error)}, `ticks: ${getErrorMessage(error)}`),
    );
  }

  waitUntilReady(): Promise<unknown> {
    return Promise.all([this.#queue.waitUntilReady(), this.#worker.waitUntilReady()]);
  }

  /** A tick (or a manual run) of a job: into the shared queue, once whatever the number of replicas. */
  fire(job: string, trigger: RunTrigger, scheduledAt: number | undefined, overlap: OverlapPolicy): void {
    const name = job.replace(/[^A-Za-z0-9_.-]/g, (c) => `%${c.charCodeAt(0).toString(16)}`);
    const id = scheduledAt !== undefined ? `tick-${name}-${scheduledAt}` : `manual-${name}-${Date.now()}-${randomBytes(3).toString('hex')}`;
    const options: JobsOptions = {jobId: id, removeOnComplete: {age: KEEP_TICKS_S}, removeOnFail: {age: KEEP_TICKS_S}};
    if (overlap === 'skip') options.deduplication = {id: `overlap-${name}`};
    else if (overlap === 'queue') options.deduplication = {id: `overlap-${name}`, keepLastIfActive: true};
    this.#queue.add('tick', {job, trigger, scheduledAt}, options).then(
      (added) => {
        // Another tick of the job holds the deduplication id: a run of it is queued or running somewhere.
        if (added.id !== id && overlap === 'skip')
          this.#host.skipShared(job, trigger, scheduledAt, `a run of ${job} is still running on a replica (overlap: skip)`);
        else if (added.id !== id)
          this.#log?.info({job, event: 'run:queued', trigger, scheduledAt}, 'queued: a run is still running on a replica (overlap: queue)');
      },
      (error: unknown) => {
        this.#log?.error(
          {job, event: 'tick:failed', scheduledAt, error: getErrorMessage(error)},
          `cannot add the tick to the shared queue: ${getErrorMessage(error)}`,
        );
      },
    );
  }

  async #process(job: Job<TickData>, token: string | undefined): Promise<string> {
    const tick = job.data;
    if (tick.runId) {
      // The replica running it died: the run is its own (its state, maybe its files), so it resumes it when it restarts.
      this.#log?.warn(
        {job: tick.job, runId: tick.runId, event: 'run:left', replica: tick.replica},
        `run ${tick.runId} of ${tick.job} was left by ${tick.replica}, which stopped; it resumes the run when it restarts`,
      );
      return 'left';
    }
    const outcome = await this.#host.runShared(tick.job, tick.trigger, tick.scheduledAt, (runId) => {
      job.updateData({...tick, runId, replica: this.#name}).catch(() => undefined);
    });
    if (outcome === 'closing') {
      // This replica is stopping: the tick goes back to the queue, for another one.
      await job.moveToWait(token);
      throw new WaitingError();
    }
    return outcome;
  }

  /** Takes no new ticks (the daemon is stopping); the runs of this replica go on. */
  pause(): Promise<void> {
    return this.#worker.pause(true);
  }

  /** Takes no new ticks; waits for the runs of this replica (the scheduler's grace applies to them). */
  async close(): Promise<void> {
    await this.#worker.close();
    await this.#queue.close();
  }
}
