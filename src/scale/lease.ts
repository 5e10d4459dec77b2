import {randomBytes} from 'node:crypto';
import {hostname} from 'node:os';
import type {Redis} from 'ioredis';
import {UsageError} from '../errors.js';

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
/** Replaces the lease of a holder known to be dead, if it still holds it. */
const TAKE_OVER = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 end
return 0`;
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/**
 * Who drives a run: one coordinator at a time, by a key set with NX and a TTL, renewed while it
 * runs. A second coordinator of the same run waits for the lease to expire (the first died) and
 * gives up if it is renewed meanwhile (the first is alive). A holder on this machine whose process
 * is gone is taken over at once.
 */
export class RunLease {
  readonly #redis: Redis;
  readonly #key: string;
  readonly #value = `${hostname()} ${process.pid} ${randomBytes(4).toString('hex')}`;
  #timer: NodeJS.Timeout | undefined;
  #renewing = false;

  private constructor(redis: Redis, key: string) {
    this.#redis = redis;
    this.#key = key;
  }

  /** Takes the lease of `runId`, waiting up to a lease's length for another holder to let go. */
  static async acquire(redis: Redis, key: string, runId: string, onLost: (holder: string | undefined) => void, onRenew?: () => void, leaseMs = LEASE_MS): Promise<RunLease> {
    const lease = new RunLease(redis, key);
    const deadline = Date.now() + leaseMs + 1000;
    for (;;) {
      if ((await redis.set(key, lease.#value, 'PX', leaseMs, 'NX')) === 'OK') break;
      const holder = await redis.get(key);
      if (holder && isDeadHereAt(holder) && (await redis.eval(TAKE_OVER, 1, key, holder, lease.#value, leaseMs)) === 1) break;
      if (Date.now() > deadline) {
        const [host, pid] = (holder ?? '? ?').split(' ');
        throw new UsageError(`run ${runId} is driven by another coordinator (pid ${pid} on ${host}); stop it first, or wait for it to end`);
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    lease.#timer = setInterval(() => {
      if (lease.#renewing) return;
      lease.#renewing = true;
      (redis.eval(RENEW, 1, key, lease.#value, leaseMs) as Promise<number>).then(async (renewed) => {
        if (renewed === 0) {
          clearInterval(lease.#timer);
          onLost((await redis.get(key)) ?? undefined);
        } else onRenew?.();
      }, () => undefined).finally(() => (lease.#renewing = false));
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
