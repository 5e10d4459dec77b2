import assert from 'node:assert/strict';
import {test, type TestContext} from 'node:test';
import * as grpc from '@grpc/grpc-js';
import {ChannelPool} from '../../src/rpc/channel.js';
import {loadMethod} from '../../src/schema/method-handle.js';
import {ClientStreamSender} from '../../src/rpc/stream-client.js';
import {DEMO_PROTO} from '../../src/util/paths.js';
import {startServer} from '../helpers/server.js';

const method = loadMethod({proto: DEMO_PROTO, method: 'demo.v1.DemoService/ProcessBatch'});
type BatchResponse = {count: number; ids: string[]};

function poolFor(t: TestContext, target: string): ChannelPool {
  const pool = new ChannelPool({target});
  t.after(() => pool.close());
  return pool;
}

test('sends records in calls of batchSize, the last one partial, and gives each record its batch response', async (t) => {
  const server = await startServer(t);
  const sender = new ClientStreamSender(poolFor(t, server.address), method, {deadlineMs: 10_000, batchSize: 100});
  const outcomes = await Promise.all(Array.from({length: 250}, (_, i) => sender.send(method.encodeRequest({id: `r${i}`}))));
  await sender.close();
  assert.equal(server.stats.streams, 3);
  assert.equal(server.stats.calls, 250);
  const sizes = new Map<string, number>();
  outcomes.forEach((outcome, i) => {
    assert.ok(outcome.ok);
    const response = outcome.response as BatchResponse;
    assert.ok(response.ids.includes(`r${i}`), `r${i} is in its batch`);
    assert.equal(response.ids.length, response.count);
    sizes.set(response.ids[0]!, response.count);
  });
  assert.deepEqual(
    [...sizes.values()].sort((a, b) => a - b),
    [50, 100, 100],
  );
});

test('sends a partial batch once no more records come', async (t) => {
  const server = await startServer(t);
  const sender = new ClientStreamSender(poolFor(t, server.address), method, {deadlineMs: 10_000, batchSize: 100});
  const one = await sender.send(method.encodeRequest({id: 'alone'}));
  assert.deepEqual(one.ok && (one.response as BatchResponse).ids, ['alone']);
  await sender.close();
});

test('a failed batch gives its status to every record of it, and to no other', async (t) => {
  const server = await startServer(t);
  const sender = new ClientStreamSender(poolFor(t, server.address), method, {deadlineMs: 10_000, batchSize: 10});
  const outcomes = await Promise.all(
    Array.from({length: 30}, (_, i) => sender.send(method.encodeRequest({id: `r${i}`, failCode: i === 13 ? 5 : 0}))),
  );
  await sender.close();
  outcomes.forEach((outcome, i) => {
    if (i >= 10 && i < 20) {
      assert.equal(!outcome.ok && outcome.code, grpc.status.NOT_FOUND, `r${i}`);
      assert.match(!outcome.ok ? outcome.details : '', /asked to fail with code 5 \(batch of 10\)/);
    } else assert.ok(outcome.ok, `r${i}`);
  });
});

test('a batch has the deadline of one call from when it is sent', async (t) => {
  const server = await startServer(t);
  const sender = new ClientStreamSender(poolFor(t, server.address), method, {deadlineMs: 100, batchSize: 3});
  const outcomes = await Promise.all([0, 1, 2].map((i) => sender.send(method.encodeRequest({id: `r${i}`, latencyMs: i === 1 ? 5000 : 0}))));
  await sender.close();
  assert.ok(outcomes.every((o) => !o.ok && o.code === grpc.status.DEADLINE_EXCEEDED));
  assert.ok(server.stats.lastStreamDeadlineMs! <= 100);
});

test('refuses a batch size that is not a positive integer', () => {
  assert.throws(
    () => new ClientStreamSender({pick: () => undefined as never}, method, {deadlineMs: 0, batchSize: 1.5}),
    /Expected `batchSize` to be an integer from 1 and up, got `1.5`/,
  );
});
