import {Worker, type Job, type Processor, type WorkerOptions} from 'bullmq';

/**
 * What this worker knows of the locks of the chunks it holds, without asking Redis. A lock set or
 * renewed by a command sent at `t` lasts at least until `t + lockDuration` (Redis ran the command
 * after `t`), so a chunk is surely this worker's until then and no longer: past that time without
 * a renewal confirmed (Redis cut off, paused, or slow), another worker may have taken it over, and
 * this one stops calling it (`onLost`). A renewal Redis refuses (the lock is gone or another's)
 * loses it at once.
 */
export class LockWatch {
  readonly #durationMs: number;
  /** Stop this long before the surely-held time runs out: timers run late on a loaded machine. */
  readonly #marginMs: number;
  readonly #held = new Map<string, {until: number; timer: NodeJS.Timeout | undefined; readonly onLost: (reason: string) => void}>();

  constructor(lockDurationMs: number) {
    this.#durationMs = lockDurationMs;
    this.#marginMs = Math.round(lockDurationMs / 10);
  }

  /** Starts watching a chunk whose lock was set by a command sent at `since` (`job.processedOn`, this worker's clock). */
  hold(id: string, since: number, onLost: (reason: string) => void): void {
    this.release(id);
    this.#held.set(id, {until: since + this.#durationMs, timer: undefined, onLost});
    this.#arm(id);
  }

  /** Whether the chunk is surely still this worker's: checked before each record is handed to its calls. */
  isHeld(id: string): boolean {
    const held = this.#held.get(id);
    return held !== undefined && Date.now() < held.until - this.#marginMs;
  }

  /** `isHeld`, and a chunk found no longer held is lost now (`onLost`), without waiting for its timer. */
  check(id: string): boolean {
    if (this.isHeld(id)) return true;
    const held = this.#held.get(id);
    if (held) this.#lose(id, this.#expired());
    return false;
  }

  /** Renewals sent at `sentAt` that Redis confirmed. */
  renewed(ids: readonly string[], sentAt: number): void {
    for (const id of ids) {
      const held = this.#held.get(id);
      if (!held || sentAt + this.#durationMs <= held.until) continue;
      held.until = sentAt + this.#durationMs;
      this.#arm(id);
    }
  }

  /** Renewals Redis refused: the lock is gone, or another worker's. */
  refused(ids: readonly string[]): void {
    for (const id of ids) this.#lose(id, 'Redis refused to renew its lock (it expired, or another worker holds it now)');
  }

  release(id: string): void {
    const held = this.#held.get(id);
    if (!held) return;
    clearTimeout(held.timer);
    this.#held.delete(id);
  }

  #arm(id: string): void {
    const held = this.#held.get(id)!;
    clearTimeout(held.timer);
    held.timer = setTimeout(
      () => {
        if (this.#held.get(id) === held && this.check(id)) this.#arm(id);
      },
      Math.max(0, held.until - this.#marginMs - Date.now()),
    );
    held.timer.unref();
  }

  #expired(): string {
    return `no lock renewal confirmed by Redis for ${this.#durationMs - this.#marginMs} ms (Redis unreachable or slow): another worker may take the chunk over`;
  }

  #lose(id: string, reason: string): void {
    const held = this.#held.get(id);
    if (!held) return;
    this.release(id);
    held.onLost(reason);
  }
}

/**
 * A BullMQ worker that tells a `LockWatch` of each lock renewal (when it was sent, what Redis said),
 * and `onCompleted` whether Redis stored a job's completion or refused it (its lock was lost after
 * the processor returned: BullMQ renews no lock while it completes a job).
 */
export class WatchedWorker<D, R> extends Worker<D, R> {
  readonly #locks: LockWatch;
  readonly #onCompleted: (id: string, refused: unknown) => void;

  constructor(
    name: string,
    processor: Processor<D, R>,
    options: WorkerOptions,
    locks: LockWatch,
    onCompleted: (id: string, refused: unknown) => void,
  ) {
    super(name, processor, options);
    this.#locks = locks;
    this.#onCompleted = onCompleted;
  }

  protected override async handleCompleted(
    result: R,
    job: Job<D, R, string>,
    token: string,
    ...rest: unknown[]
  ): Promise<Job<D, R, string>> {
    try {
      const next = await super.handleCompleted(result, job, token, ...(rest as []));
      this.#onCompleted(job.id!, undefined);
      return next;
    } catch (error) {
      this.#onCompleted(job.id!, error);
      throw error;
    }
  }

  override async extendJobLocks(jobIds: string[], tokens: string[], duration: number): Promise<string[]> {
    const sentAt = Date.now();
    const refused = await super.extendJobLocks(jobIds, tokens, duration);
    // `#locks` is set after super(): a renewal cannot come before the constructor returns.
    this.#locks.renewed(
      jobIds.filter((id) => !refused.includes(id)),
      sentAt,
    );
    this.#locks.refused(refused);
    return refused;
  }
}
