import {randomBytes} from 'node:crypto';
import {hostname} from 'node:os';
import type {Redis} from 'ioredis';
import {FencedError, UsageError} from '../errors.js';

/** How long a lease holds without renewal: a coordinator that froze or died lets go after this. */
export const LEASE_MS = 15_000;

/**
 * Renews the lease if it is still ours: 1 renewed, 0 lost. A lease found gone is lost too, never
 * taken back: it expired while this coordinator could not reach Redis, and another may have taken
 * it, driven the run to its end and released it since.
 */
const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0`;
/**
 * Takes a free lease (KEYS[1], value ARGV[1], ARGV[2] ms) and the run's next generation (KEYS[2],
 * kept ARGV[3] ms): the generation, or 0 when another holds the lease.
 */
const ACQUIRE = `
if not redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then return 0 end
local generation = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return generation`;
/** Replaces the lease of a holder known to be dead (ARGV[4]), if it still holds it: the next generation, or 0. */
const TAKE_OVER = `
if redis.call('GET', KEYS[1]) ~= ARGV[4] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local generation = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return generation`;
/**
 * The fencing check, run in Redis before a coordinator writes: 1 while the lease (KEYS[1]) is this
 * coordinator's (ARGV[1]) and the run's generation (KEYS[2]) is still its own (ARGV[2]), else 0.
 * With more keys and ARGV[3] = the TTL, it also writes them (SADD KEYS[3] ARGV[4] and PEXPIRE, or
 * SREM KEYS[3] ARGV[4] and DEL KEYS[4...] when ARGV[5] is 'forget', or SET KEYS[3] '1' for 'probe')
 * in the same step: nothing is written by a coordinator that lost the run.
 */
export const FENCED_WRITE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] or redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end
if ARGV[5] == 'add' then
  redis.call('SADD', KEYS[3], ARGV[4])
  redis.call('PEXPIRE', KEYS[3], ARGV[3])
elseif ARGV[5] == 'forget' then
  redis.call('SREM', KEYS[3], ARGV[4])
  for i = 4, #KEYS do redis.call('DEL', KEYS[i]) end
elseif ARGV[5] == 'probe' then
  redis.call('SET', KEYS[3], '1', 'PX', ARGV[3])
end
return 1`;

/** The key of a run's generation, next to its lease's. */
export function generationKey(leaseKey: string): string {
  return `${leaseKey}:generation`;
}
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/**
 * Who drives a run: one coordinator at a time, by a key set with NX and a TTL, renewed while it
 * runs. A second coordinator of the same run waits for the lease to expire (the first died) and
 * gives up if it is renewed meanwhile (the first is alive). A holder on this machine whose process
 * is gone is taken over at once.
 *
 * Each taking of the lease increments the run's generation (a fencing token, `<lease>:generation`):
 * before each write (a merge into the results file, a checkpoint, a chunk queued or removed) the
 * coordinator checks in Redis that the lease and the generation are still its own (`check`,
 * `FENCED_WRITE`), so one that froze past its lease while another took the run writes nothing more.
 */
export class RunLease {
  readonly #redis: Redis;
  readonly #key: string;
  readonly #runId: string;
  readonly #value = `${hostname()} ${process.pid} ${randomBytes(4).toString('hex')}`;
  #generation = 0;
  #lost: FencedError | undefined;
  #timer: NodeJS.Timeout | undefined;
  #renewing = false;

  private constructor(redis: Redis, key: string, runId: string) {
    this.#redis = redis;
    this.#key = key;
    this.#runId = runId;
  }

  /** This coordinator's generation of the run: 1 for the first to take its lease, +1 for each taking since. */
  get generation(): number {
    return this.#generation;
  }

  /** Why the lease is lost, once it is (found at a renewal or a check); never found back. */
  get lost(): FencedError | undefined {
    return this.#lost;
  }

  /** The keys and arguments `FENCED_WRITE` starts with. */
  fenceArgs(): {keys: [string, string]; args: [string, string]} {
    return {keys: [this.#key, generationKey(this.#key)], args: [this.#value, String(this.#generation)]};
  }

  /**
   * Checks in Redis that the run is still this coordinator's (its lease, its generation); throws
   * `FencedError` (and stays lost) when not. A Redis that does not answer makes it wait.
   */
  async check(): Promise<void> {
    if (this.#lost) throw this.#lost;
    const {keys, args} = this.fenceArgs();
    if ((await this.#redis.eval(FENCED_WRITE, 2, ...keys, ...args)) === 1) return;
    throw this.fenced((await this.#redis.get(this.#key).catch(() => null)) ?? undefined);
  }

  /** Marks the lease lost (`holder`: who holds it now, if anyone) and returns why, as a `FencedError`. */
  fenced(holder: string | undefined): FencedError {
    this.#lost ??= new FencedError(
      holder === undefined
        ? `the lease of run ${this.#runId} (generation ${this.#generation}) is no longer in Redis (Redis lost its data, or the lease expired while this coordinator was cut off from Redis or frozen, and another drove the run since): this one stopped and wrote nothing more`
        : `run ${this.#runId} was taken over by another coordinator (${holder}) while this one (generation ${this.#generation}) was cut off from Redis or frozen: this one stopped and wrote nothing more`,
    );
    clearInterval(this.#timer);
    return this.#lost;
  }

  /**
   * Takes the lease of `runId`, waiting up to a lease's length for another holder to let go.
   * `generationTtlMs`: how long the run's generation outlives the lease (the run's keys' TTL).
   */
  static async acquire(
    redis: Redis,
    key: string,
    runId: string,
    onLost: (holder: string | undefined) => void,
    onRenew?: () => void,
    leaseMs = LEASE_MS,
    generationTtlMs = 24 * 3600_000,
  ): Promise<RunLease> {
    const lease = new RunLease(redis, key, runId);
    const deadline = Date.now() + leaseMs + 1000;
    const keepMs = Math.max(leaseMs, generationTtlMs);
    for (;;) {
      lease.#generation = Number(await redis.eval(ACQUIRE, 2, key, generationKey(key), lease.#value, leaseMs, keepMs));
      if (lease.#generation > 0) break;
      const holder = await redis.get(key);
      if (holder && isDeadHereAt(holder)) {
        lease.#generation = Number(await redis.eval(TAKE_OVER, 2, key, generationKey(key), lease.#value, leaseMs, keepMs, holder));
        if (lease.#generation > 0) break;
      }
      if (Date.now() > deadline) {
        const [host, pid] = (holder ?? '? ?').split(' ');
        throw new UsageError(`run ${runId} is driven by another coordinator (pid ${pid} on ${host}); stop it first, or wait for it to end`);
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    lease.#timer = setInterval(() => {
      if (lease.#renewing) return;
      lease.#renewing = true;
      (redis.eval(RENEW, 1, key, lease.#value, leaseMs) as Promise<number>)
        .then(
          async (renewed) => {
            if (renewed === 0) {
              const holder = (await redis.get(key)) ?? undefined;
              lease.fenced(holder);
              onLost(holder);
            } else onRenew?.();
          },
          () => undefined,
        )
        .finally(() => (lease.#renewing = false));
    }, leaseMs / 3);
    lease.#timer.unref();
    return lease;
  }

  async release(): Promise<void> {
    clearInterval(this.#timer);
    await this.#redis.eval(RELEASE, 1, this.#key, this.#value).catch(() => undefined);
  }
}

/** Whether a lease holder (`host pid token`) is a process of this machine that no longer runs. */
function isDeadHereAt(holder: string): boolean {
  const [host, pid] = holder.split(' ');
  if (host !== hostname() || !pid || Number(pid) === process.pid) return false;
  try {
    process.kill(Number(pid), 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
