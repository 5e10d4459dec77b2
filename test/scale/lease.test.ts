import assert from 'node:assert/strict';
import {hostname} from 'node:os';
import {test} from 'node:test';
import {FencedError, UsageError} from '../../src/errors.js';
import {FENCED_WRITE, generationKey, RunLease} from '../../src/scale/lease.js';
import {waitFor} from '../helpers/cli.js';
import {redisPrefix} from '../helpers/redis.js';

test('one coordinator per run: a second waits out the lease and gives up while the first renews it, then gets it once released', async (t) => {
  const {prefix, redis} = await redisPrefix(t);
  const key = `${prefix}:runs:r1:lease`;
  const first = await RunLease.acquire(redis, key, 'r1', () => assert.fail('the first lost its lease'), undefined, 300);
  await assert.rejects(
    RunLease.acquire(redis, key, 'r1', () => undefined, undefined, 300),
    (error: unknown) => error instanceof UsageError && /run r1 is driven by another coordinator \(pid \d+ on /.test(error.message),
  );
  await first.release();
  const second = await RunLease.acquire(redis, key, 'r1', () => undefined, undefined, 300);
  assert.match((await redis.get(key))!, new RegExp(`^${hostname()} ${process.pid} `));
  await second.release();
  assert.equal(await redis.get(key), null);
});

test('a lease held by a process of this machine that is gone is taken over at once', async (t) => {
  const {prefix, redis} = await redisPrefix(t);
  const key = `${prefix}:runs:r2:lease`;
  // A pid that does not exist: far above any pid_max.
  await redis.set(key, `${hostname()} 999999999 dead`, 'PX', 60_000);
  const started = Date.now();
  const lease = await RunLease.acquire(redis, key, 'r2', () => undefined, undefined, 60_000);
  assert.ok(Date.now() - started < 5000, "no wait for the dead holder's lease to expire");
  assert.match((await redis.get(key))!, new RegExp(`^${hostname()} ${process.pid} `));
  await lease.release();
});

test('a lease found gone at renewal is lost, never taken back (another coordinator may have driven the run to its end and released it)', async (t) => {
  const {prefix, redis} = await redisPrefix(t);
  const key = `${prefix}:runs:r3:lease`;
  let lost: {holder: string | undefined} | undefined;
  const lease = await RunLease.acquire(redis, key, 'r3', (holder) => (lost = {holder}), undefined, 300);
  await redis.del(key); // it expired, another coordinator took it, finished and let it go
  await waitFor(() => lost !== undefined, 10_000, 'the lease to be found lost');
  assert.deepEqual(lost, {holder: undefined}, 'lost, and gone: no holder');
  assert.equal(await redis.get(key), null, 'not taken back');
  await lease.release();
});

test('each taking of a lease is a new generation; a holder of an older one fails its check and its fenced writes write nothing', async (t) => {
  const {prefix, redis} = await redisPrefix(t);
  const key = `${prefix}:runs:r4:lease`;
  const first = await RunLease.acquire(redis, key, 'r4', () => undefined, undefined, 300);
  assert.equal(first.generation, 1);
  await first.check(); // its own: passes
  // It froze past its lease: the lease expired and another coordinator took the run.
  await redis.del(key);
  const second = await RunLease.acquire(redis, key, 'r4', () => undefined, undefined, 300);
  assert.equal(second.generation, 2);
  assert.equal(await redis.get(generationKey(key)), '2');
  await assert.rejects(
    first.check(),
    (error: unknown) =>
      error instanceof FencedError && /run r4 was taken over by another coordinator .*\(generation 1\)/.test(error.message),
  );
  assert.ok(first.lost instanceof FencedError, 'lost for good');
  const set = `${prefix}:runs:r4:chunks`;
  const stale = first.fenceArgs();
  assert.equal(await redis.eval(FENCED_WRITE, 3, ...stale.keys, set, ...stale.args, 60_000, 'r4.x-1', 'add'), 0);
  assert.equal(await redis.exists(set), 0, 'the older generation added nothing');
  const own = second.fenceArgs();
  assert.equal(await redis.eval(FENCED_WRITE, 3, ...own.keys, set, ...own.args, 60_000, 'r4.x-1', 'add'), 1);
  assert.deepEqual(await redis.smembers(set), ['r4.x-1']);
  assert.equal(await redis.eval(FENCED_WRITE, 3, ...stale.keys, set, ...stale.args, 60_000, 'r4.x-1', 'forget'), 0);
  assert.deepEqual(await redis.smembers(set), ['r4.x-1'], 'the older generation removed nothing');
  await second.check();
  await second.release();
  await first.release();
  assert.equal(await redis.get(key), null);
});
