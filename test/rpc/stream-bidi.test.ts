import assert from 'node:assert/strict';
import {test, type TestContext} from 'node:test';
import * as grpc from '@grpc/grpc-js';
import type {CallOutcome} from '../../src/rpc/call.js';
import {ChannelPool} from '../../src/rpc/channel.js';
import {loadMethod} from '../../src/schema/method-handle.js';
import {BidiSender} from '../../src/rpc/stream-bidi.js';
import {DEMO_PROTO} from '../../src/util/paths.js';
import {startH2StreamServer} from '../helpers/h2-stream-server.js';
import {startServer} from '../helpers/server.js';

const method = loadMethod({proto: DEMO_PROTO, method: 'demo.v1.DemoService/ProcessStream'});

function poolFor(t: TestContext, target: string): ChannelPool {
  const pool = new ChannelPool({target});
  t.after(() => pool.close());
  return pool;
}

const request = (fields: Record<string, unknown>) => method.encodeRequest(fields);
const idOf = (outcome: CallOutcome) => (outcome.ok ? (outcome.response as {id: string}).id : undefined);

test('the method handle says the method is bidi-streaming', () => {
  assert.equal(method.kind, 'bidi');
  assert.equal(loadMethod({proto: DEMO_PROTO, method: 'demo.v1.DemoService/ProcessBatch'}).kind, 'client-streaming');
  assert.equal(loadMethod({proto: DEMO_PROTO, method: 'demo.v1.DemoService/Process'}).kind, 'unary');
});

test('answers every record with its own response, in order, over only the streams asked for', async (t) => {
  const server = await startServer(t);
  const sender = new BidiSender(poolFor(t, server.address), method, {deadlineMs: 10_000, streams: 3});
  // Uneven latencies: a quick answer must still wait for the slower ones sent before it on its stream.
  const outcomes = await Promise.all(Array.from({length: 2000}, (_, i) => sender.send(request({id: `r${i}`, latencyMs: (i * 7) % 4}))));
  await sender.close();
  assert.deepEqual(
    outcomes.map(idOf),
    Array.from({length: 2000}, (_, i) => `r${i}`),
  );
  assert.equal(server.stats.streams, 3);
  assert.equal(server.stats.calls, 2000);
  assert.deepEqual(server.stats.byStatus, {OK: 2000});
  assert.equal(server.stats.openStreams, 0, 'close() ended every stream');
});

test('sends the job metadata once per stream', async (t) => {
  const server = await startServer(t);
  const metadata = new grpc.Metadata();
  metadata.set('x-demo-echo', 'hello');
  const sender = new BidiSender(poolFor(t, server.address), method, {deadlineMs: 10_000, streams: 2, metadata});
  const outcomes = await Promise.all(Array.from({length: 10}, (_, i) => sender.send(request({id: `r${i}`}))));
  await sender.close();
  assert.ok(outcomes.every((o) => o.ok && (o.response as {echoedMetadata: string}).echoedMetadata === 'hello'));
  assert.equal(server.stats.streams, 2);
});

test('a stream the server ends with a status gives that status to the records it had not answered, and to those only', async (t) => {
  const server = await startServer(t);
  const sender = new BidiSender(poolFor(t, server.address), method, {deadlineMs: 10_000, streams: 1});
  // r5's turn ends the stream with NOT_FOUND: r0-r4 were answered, r5-r9 were not.
  const outcomes = await Promise.all(Array.from({length: 10}, (_, i) => sender.send(request({id: `r${i}`, failCode: i === 5 ? 5 : 0}))));
  assert.deepEqual(outcomes.slice(0, 5).map(idOf), ['r0', 'r1', 'r2', 'r3', 'r4']);
  for (const outcome of outcomes.slice(5)) {
    assert.equal(outcome.ok, false);
    assert.equal(!outcome.ok && outcome.code, grpc.status.NOT_FOUND);
    assert.match(!outcome.ok ? outcome.details : '', /asked to fail with code 5 \(the stream ended before this record's answer\)/);
  }
  // The next record opens a fresh stream.
  assert.equal(idOf(await sender.send(request({id: 'after'}))), 'after');
  await sender.close();
  assert.equal(server.stats.streams, 2);
});

for (const [how, code] of [
  ['reset', grpc.status.INTERNAL],
  ['drop-connection', grpc.status.UNAVAILABLE],
  ['end-ok', grpc.status.UNAVAILABLE],
] as const) {
  test(`a stream broken mid-run (${how}) ends every record it had not answered with ${grpc.status[code]}; no record is left without an outcome`, async (t) => {
    const server = await startH2StreamServer(t, {how, breakAfter: 20, breaks: 2});
    const sender = new BidiSender(poolFor(t, server.address), method, {deadlineMs: 10_000, streams: 4});
    const outcomes = await Promise.all(Array.from({length: 400}, (_, i) => sender.send(request({id: `r${i}`}))));
    await sender.close();
    assert.equal(outcomes.length, 400);
    const failed = outcomes.filter((o) => !o.ok);
    assert.ok(server.counts.broken >= 1, 'the server broke a stream');
    assert.ok(failed.length >= server.counts.broken, 'a broken stream leaves at least its last record unanswered');
    for (const outcome of failed) assert.equal(!outcome.ok && outcome.code, code, !outcome.ok ? outcome.details : '');
    // Every OK answer went to its own record.
    outcomes.forEach((outcome, i) => outcome.ok && assert.equal(idOf(outcome), `r${i}`));
    // A reset connection may lose answers already written; a broken stream loses none.
    const ok = outcomes.filter((o) => o.ok).length;
    if (how === 'drop-connection') assert.ok(ok <= server.counts.answered);
    else assert.equal(ok, server.counts.answered);
  });
}

test('a response with no record waiting for it cancels the stream; the next record goes on a fresh one', async (t) => {
  const server = await startH2StreamServer(t, {how: 'extra-response', breakAfter: 3, breaks: 1});
  const sender = new BidiSender(poolFor(t, server.address), method, {deadlineMs: 10_000, streams: 1});
  const outcomes: CallOutcome[] = [];
  // One at a time, so the extra answer arrives with no record waiting.
  for (let i = 0; i < 3; i++) outcomes.push(await sender.send(request({id: `r${i}`})));
  await new Promise((resolve) => setTimeout(resolve, 50));
  outcomes.push(await sender.send(request({id: 'next'})));
  await sender.close();
  assert.deepEqual(outcomes.slice(0, 3).map(idOf), ['r0', 'r1', 'r2']);
  assert.equal(idOf(outcomes[3]!), 'next', 'the next record went on a fresh stream');
  assert.equal(server.counts.streams, 2, 'the out-of-step stream was cancelled');
});

test('a record with no answer within the deadline ends DEADLINE_EXCEEDED, with the records behind it on its stream; the next record goes on a fresh stream', async (t) => {
  const server = await startServer(t);
  const sender = new BidiSender(poolFor(t, server.address), method, {deadlineMs: 200, streams: 1});
  const slow = sender.send(request({id: 'slow', latencyMs: 5000}));
  const behind = sender.send(request({id: 'behind'}));
  const [slowOutcome, behindOutcome] = await Promise.all([slow, behind]);
  assert.equal(!slowOutcome.ok && slowOutcome.code, grpc.status.DEADLINE_EXCEEDED);
  assert.match(!slowOutcome.ok ? slowOutcome.details : '', /no answer within 200ms$/);
  assert.equal(!behindOutcome.ok && behindOutcome.code, grpc.status.DEADLINE_EXCEEDED);
  assert.match(!behindOutcome.ok ? behindOutcome.details : '', /on a record sent before this one/);
  assert.equal(idOf(await sender.send(request({id: 'next'}))), 'next');
  await sender.close();
  assert.equal(server.stats.streams, 2);
});

test('each stream carries a gRPC deadline and is replaced once it has taken records for rotateAfterMs', async (t) => {
  const server = await startServer(t);
  const sender = new BidiSender(poolFor(t, server.address), method, {deadlineMs: 5000, streams: 1, rotateAfterMs: 20});
  // One record at a time, each answered after 40 ms: by the next send, the stream is past 20 ms.
  for (let i = 0; i < 4; i++) assert.equal(idOf(await sender.send(request({id: `r${i}`, latencyMs: 40}))), `r${i}`);
  await sender.close();
  assert.equal(server.stats.streams, 4);
  const deadline = server.stats.lastStreamDeadlineMs!;
  assert.ok(Number.isFinite(deadline) && deadline > 0 && deadline <= 5020, `the stream's deadline: ${deadline}ms`);
});

test('with no deadline, streams have none and are not replaced', async (t) => {
  const server = await startServer(t);
  const sender = new BidiSender(poolFor(t, server.address), method, {deadlineMs: 0, streams: 1, rotateAfterMs: 1});
  for (let i = 0; i < 3; i++) assert.equal(idOf(await sender.send(request({id: `r${i}`, latencyMs: 5}))), `r${i}`);
  await sender.close();
  assert.equal(server.stats.streams, 1);
  assert.equal(server.stats.lastStreamDeadlineMs, Infinity);
});

test('cancelling through the in-flight registry ends unanswered records CANCELLED', async (t) => {
  const server = await startServer(t);
  const inFlight = new Set<{cancel(): void}>();
  const sender = new BidiSender(poolFor(t, server.address), method, {deadlineMs: 10_000, streams: 2, inFlight});
  const pending = Array.from({length: 6}, (_, i) => sender.send(request({id: `r${i}`, latencyMs: 5000})));
  assert.equal(inFlight.size, 2, 'each open stream is in the registry');
  for (const call of inFlight) call.cancel();
  const outcomes = await Promise.all(pending);
  assert.ok(outcomes.every((o) => !o.ok && o.code === grpc.status.CANCELLED));
  await sender.close();
  assert.equal(inFlight.size, 0);
});

test('refuses a streams count that is not a positive integer', () => {
  assert.throws(
    () => new BidiSender({pick: () => undefined as never}, method, {deadlineMs: 0, streams: 0}),
    /Expected `streams` to be an integer from 1 and up, got `0`/,
  );
});
