import assert from 'node:assert/strict';
import {hostname} from 'node:os';
import {test} from 'node:test';
import {UsageError} from '../../src/errors.js';
import {RunLease} from '../../src/scale/lease.js';
import {waitFor} from '../helpers/cli.js';
import {redisPrefix} from '../helpers/redis.js';

test('one coordinator per run: a second waits out the lease and gives up while the first renews it, then gets it once released', async (t) => {
  const {prefix, redis} = await redisPrefix(t);
  const key = `${prefix}:runs:r1:lease`;
  const first = await RunLease.acquire(redis, key, 'r1', () => assert.fail('the first lost its lease'), undefined, 300);
  await assert.rejects(RunLease.acquire(redis, key, 'r1', () => undefined, undefined, 300), (error: unknown) => error instanceof UsageError && /run r1 is driven by another coordinator \(pid \d+ on /.test(error.message));
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
  assert.ok(Date.now() - started < 5000, 'no wait for the dead holder\'s lease to expire');
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
