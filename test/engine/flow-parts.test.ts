import assert from 'node:assert/strict';
import {test} from 'node:test';
import {AdaptiveLimit, rampConcurrency} from '../../src/engine/adaptive-limit.js';
import {TurnPacer} from '../../src/engine/turn-pacer.js';
import {OutageGate} from '../../src/rpc/outage-gate.js';
import {RetryThrottle} from '../../src/rpc/retry-throttle.js';
import {BackoffTimers, pushbackMs} from '../../src/rpc/retry.js';
import * as grpc from '@grpc/grpc-js';

const feed = (limit: AdaptiveLimit, samples: number, rtt: number, dropped = false) => {
  for (let i = 0; i < samples; i++) limit.onSample(rtt, limit.limit, dropped);
};

test('the adaptive limit climbs to the cap while latency stays flat', () => {
  const limit = new AdaptiveLimit({maxLimit: 200});
  assert.equal(limit.limit, 20);
  feed(limit, 5000, 20);
  assert.equal(limit.limit, 200);
});

test('the adaptive limit comes down when latency rises and goes back up when it recovers', () => {
  const limit = new AdaptiveLimit({maxLimit: 100});
  feed(limit, 2000, 20);
  assert.equal(limit.limit, 100);
  feed(limit, 300, 200);
  const low = limit.limit;
  assert.ok(low < 60, `after a tenfold rise: ${low}`);
  feed(limit, 20_000, 20);
  assert.ok(limit.limit > 90, `after recovery: ${limit.limit}`);
  assert.deepEqual([limit.range().min <= low, limit.range().max], [true, 100]);
});

test('shed calls cut the adaptive limit at most once per window', () => {
  const limit = new AdaptiveLimit({maxLimit: 100, initialLimit: 100});
  feed(limit, 50, 5, true);
  assert.equal(limit.limit, 90, 'one cut for one window of shed calls');
  feed(limit, 500, 5, true);
  assert.ok(limit.limit < 20, `${limit.limit}`);
});

test('rampConcurrency rises linearly from 1 to the cap', () => {
  assert.deepEqual(
    [0, 250, 500, 1000, 5000].map((t) => rampConcurrency(40, t, 1000)),
    [1, 10, 20, 40, 40],
  );
  assert.equal(rampConcurrency(40, 0, 0), 40);
});

test('the turn pacer lets at most 8 start per event-loop turn', async () => {
  const pacer = new TurnPacer(8);
  const turns: number[] = [];
  let turn = 0;
  let ticking = true;
  const tick = () => {
    turn++;
    if (ticking) setImmediate(tick);
  };
  setImmediate(tick);
  const starts = Array.from({length: 20}, () => {
    const wait = pacer.take();
    return (wait ?? Promise.resolve()).then(() => turns.push(turn));
  });
  await Promise.all(starts);
  ticking = false;
  const perTurn = new Map<number, number>();
  for (const t of turns) perTurn.set(t, (perTurn.get(t) ?? 0) + 1);
  assert.ok(
    [...perTurn.values()].every((n) => n <= 8),
    JSON.stringify([...perTurn]),
  );
  assert.equal(turns.length, 20);
  assert.ok(perTurn.size >= 3, 'spread over three turns or more');
});

test('the retry throttle makes retries wait for tokens instead of refusing them', async () => {
  const throttle = new RetryThrottle({maxTokens: 10, tokenRatio: 1, refillPerSec: 0.001});
  for (let i = 0; i < 6; i++) throttle.onRetryableFailure();
  assert.equal(throttle.isRetryAllowed(), false);
  let went = false;
  const waiting = throttle.acquire()!.then((go) => (went = go));
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(went, false, 'waits while the bucket is at half or less');
  throttle.onSuccess();
  throttle.onSuccess();
  await waiting;
  assert.equal(went, true, 'goes once OK answers refill the bucket');
  assert.equal(throttle.waited, 1);
});

test('the retry throttle refills with time, so a backend that fails everything still sees retries, slowly', async () => {
  const throttle = new RetryThrottle({maxTokens: 10, tokenRatio: 1, refillPerSec: 100});
  for (let i = 0; i < 10; i++) throttle.onRetryableFailure();
  assert.equal(await throttle.acquire(), true);
});

test('backoff timers: one stop ends every sleep at once, with no listener per sleep', async () => {
  const stop = new AbortController();
  const timers = new BackoffTimers(stop.signal);
  const sleeps = Array.from({length: 50}, () => timers.wait(60_000));
  stop.abort();
  assert.deepEqual(new Set(await Promise.all(sleeps)), new Set([false]));
  assert.equal(await timers.wait(1), false);
});

test('pushbackMs reads grpc-retry-pushback-ms: ms, or stop for a malformed value', () => {
  const at = (value?: string) => {
    const metadata = new grpc.Metadata();
    if (value !== undefined) metadata.set('grpc-retry-pushback-ms', value);
    return pushbackMs(metadata);
  };
  assert.deepEqual([at('250'), at('-1'), at('soon'), at()], [250, 'stop', 'stop', undefined]);
});

test('the outage gate: closed on a lost connection, a probe when READY, open on its OK; gives up after maxOutage', async () => {
  let state = grpc.connectivityState.TRANSIENT_FAILURE;
  const events: string[] = [];
  const gate = new OutageGate({
    state: () => state,
    watch: (_current, _deadline, callback) => void setTimeout(callback, 5),
    maxOutageMs: 0,
    initialProbeMs: 5,
    onChange: (event) => events.push(event.type),
  });
  assert.equal(gate.pass(), undefined, 'open: no wait');
  assert.equal(gate.onFailure(14, 'connect ECONNREFUSED', true), true);
  const first = gate.pass()!;
  const second = gate.pass()!;
  let released = 0;
  void first.then(() => released++);
  void second.then(() => released++);
  await new Promise((resolve) => setTimeout(resolve, 30));
  assert.equal(released, 0, 'nothing goes while the channel is down');
  state = grpc.connectivityState.READY;
  assert.equal(await first, true, 'the first record is the probe');
  assert.equal(released, 1, 'only the probe');
  gate.onOk();
  assert.equal(await second, true);
  assert.deepEqual(events, ['down', 'up']);
  assert.equal(gate.status().pauses, 1);

  const giveUp = new OutageGate({
    state: () => grpc.connectivityState.TRANSIENT_FAILURE,
    watch: (_c, _d, cb) => void setTimeout(cb, 5),
    maxOutageMs: 50,
    initialProbeMs: 5,
  });
  giveUp.onFailure(14, 'connect ECONNREFUSED', true);
  assert.equal(await giveUp.pass(), false);
  assert.equal(giveUp.gaveUp, true);
});

test('the outage gate: UNAVAILABLE with no OK for a while closes it; an answer of another code opens it', () => {
  let now = 0;
  const gate = new OutageGate({
    state: () => grpc.connectivityState.READY,
    watch: () => undefined,
    burstMs: 1000,
    burstCount: 5,
    now: () => now,
  });
  for (let i = 0; i < 10; i++) assert.equal(gate.onFailure(14, 'overloaded', false), false, 'a short burst is not an outage');
  now = 1500;
  assert.equal(gate.onFailure(14, 'overloaded', false), true, 'a second of nothing else is');
  assert.equal(gate.isOpen, false);
  gate.onFailure(3, 'bad request', false);
  assert.equal(gate.isOpen, true, 'the server answered: it is there');
  gate.stop();
});
