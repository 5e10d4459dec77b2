import assert from 'node:assert/strict';
import {readFileSync} from 'node:fs';
import path from 'node:path';
import {test, type TestContext} from 'node:test';
import * as grpc from '@grpc/grpc-js';
import {PACKAGE_ROOT} from '../../src/util/paths.js';
import type {CallOutcome} from '../../src/rpc/call.js';
import {ChannelPool} from '../../src/rpc/channel.js';
import {callUnaryH2, type H2CallContext} from '../../src/rpc/h2-transport.js';
import {expectedReply, rawMethod, startEchoServer, type EchoServer} from '../helpers/echo-server.js';
import {waitFor} from '../helpers/cli.js';

/**
 * The `h2` transport against an in-process grpc-js server, plaintext and TLS: every reply
 * byte-checked, the statuses grpc-js sends, flow control both ways, deadlines, cancel, shutdown.
 */

const TLS_DIR = path.join(PACKAGE_ROOT, 'test', 'fixtures', 'tls');
const read = (file: string) => readFileSync(path.join(TLS_DIR, file));
const METHOD = rawMethod();

interface Setup {
  readonly server: EchoServer;
  readonly pool: ChannelPool;
  readonly h2: H2CallContext;
}

async function setup(t: TestContext, secure: boolean, serverOptions?: grpc.ServerOptions): Promise<Setup> {
  const server = await startEchoServer(t, {
    ...(secure ? {tls: {key: read('server.key'), cert: read('server.pem')}} : {}),
    ...(serverOptions ? {serverOptions} : {}),
  });
  const pool = new ChannelPool({
    target: secure ? `localhost:${server.port}` : server.address,
    transport: 'h2',
    ...(secure ? {tls: {ca: path.join(TLS_DIR, 'ca.pem')}} : {}),
  });
  t.after(() => pool.close());
  return {server, pool, h2: pool.pickH2()};
}

function metadata(entries: Record<string, string | Buffer>): grpc.Metadata {
  const out = new grpc.Metadata();
  for (const [key, value] of Object.entries(entries)) out.set(key, value);
  return out;
}

function call(
  s: Setup,
  request: Buffer,
  options: {deadlineMs?: number; metadata?: grpc.Metadata; recordMetadata?: boolean} = {},
  method = METHOD,
): Promise<CallOutcome> {
  return callUnaryH2(s.h2, method, request, {
    deadlineMs: options.deadlineMs ?? 30_000,
    ...(options.metadata ? {metadata: options.metadata} : {}),
    recordMetadata: options.recordMetadata ?? false,
  });
}

function replyOf(outcome: CallOutcome): Buffer {
  assert.ok(outcome.ok, `expected OK, got ${JSON.stringify(outcome)}`);
  return outcome.response as Buffer;
}

for (const secure of [false, true]) {
  const mode = secure ? 'TLS' : 'plaintext';

  test(`${mode}: 3,000 calls at 100 in flight, every reply byte-checked, one connection`, async (t) => {
    const s = await setup(t, secure);
    let next = 0;
    let checked = 0;
    const slow = metadata({'x-delay-ms': '1'}); // the server holds each call a moment, so they overlap
    const worker = async () => {
      while (next < 3000) {
        const i = next++;
        const request = Buffer.from(`request ${i} ${'x'.repeat(i % 50)}`);
        assert.deepEqual(replyOf(await call(s, request, {metadata: slow})), request);
        checked++;
      }
    };
    await Promise.all(Array.from({length: 100}, worker));
    assert.equal(checked, 3000);
    assert.equal(s.server.stats.calls, 3000);
    assert.ok(s.server.stats.maxInFlight > 1, 'calls were in flight together');
    assert.equal(s.pool.connectivity(false), grpc.connectivityState.READY);
  });

  test(`${mode}: NOT_FOUND with its message and binary trailer; a trailers-only UNIMPLEMENTED`, async (t) => {
    const s = await setup(t, secure);
    const failed = await call(s, Buffer.from('a'), {
      metadata: metadata({'x-fail': '5', 'x-fail-message': 'no such thing: 100% gone, ok?', 'x-trailer-bin': Buffer.from([0, 1, 2, 255])}),
      recordMetadata: true,
    });
    assert.equal(failed.ok, false);
    assert.equal(failed.ok === false && failed.code, grpc.status.NOT_FOUND);
    assert.equal(failed.ok === false && failed.details, 'no such thing: 100% gone, ok?');
    assert.deepEqual(failed.ok === false && failed.trailers?.get('x-trailer-bin'), [Buffer.from([0, 1, 2, 255])]);
    assert.equal(failed.recorded?.trailers['x-trailer-bin'], Buffer.from([0, 1, 2, 255]).toString('base64'));
    assert.equal(failed.recorded?.headers['x-header'], 'h1');

    const missing = await call(s, Buffer.from('a'), {}, rawMethod('/test.Echo/Missing'));
    assert.equal(missing.ok === false && missing.code, grpc.status.UNIMPLEMENTED);
    assert.match(missing.ok === false ? missing.details : '', /does not implement the method \/test.Echo\/Missing/);
  });

  test(`${mode}: a 1 MiB request, an empty message, and 6 replies of 3 MiB at once`, async (t) => {
    const s = await setup(t, secure);
    const big = Buffer.alloc(1 << 20);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
    assert.ok(replyOf(await call(s, big)).equals(big), '1 MiB request echoed');
    assert.equal(replyOf(await call(s, Buffer.alloc(0))).length, 0);
    const sizes = 3 << 20;
    const replies = await Promise.all(
      Array.from({length: 6}, (_, i) => call(s, Buffer.from([i * 10]), {metadata: metadata({'x-reply-bytes': String(sizes)})})),
    );
    replies.forEach((reply, i) =>
      assert.ok(replyOf(reply).equals(expectedReply(Buffer.from([i * 10]), sizes)), `reply ${i} byte for byte`),
    );
  });

  test(`${mode}: DEADLINE_EXCEEDED for a slow call, and the connection still serves the next call`, async (t) => {
    const s = await setup(t, secure);
    assert.deepEqual(replyOf(await call(s, Buffer.from('warm'))), Buffer.from('warm'));
    const late = await call(s, Buffer.from('slow'), {deadlineMs: 100, metadata: metadata({'x-delay-ms': '5000'})});
    assert.equal(late.ok === false && late.code, grpc.status.DEADLINE_EXCEEDED);
    assert.deepEqual(replyOf(await call(s, Buffer.from('after'))), Buffer.from('after'));
    assert.equal(s.server.stats.calls, 3);
  });

  test(`${mode}: cancel ends the call with CANCELLED and the server sees it cancelled`, async (t) => {
    const s = await setup(t, secure);
    const inFlight = new Set<{cancel(): void}>();
    const pending = callUnaryH2(s.h2, METHOD, Buffer.from('c'), {
      deadlineMs: 30_000,
      metadata: metadata({'x-delay-ms': '20000'}),
      inFlight,
    });
    await waitFor(() => s.server.stats.inFlight === 1, 20_000, 'the call at the server');
    for (const c of inFlight) c.cancel();
    const outcome = await pending;
    assert.equal(outcome.ok === false && outcome.code, grpc.status.CANCELLED);
    await waitFor(() => s.server.stats.cancelled === 1, 20_000, 'the server to see the cancel');
    assert.deepEqual(replyOf(await call(s, Buffer.from('next'))), Buffer.from('next'));
  });

  test(`${mode}: a graceful shutdown lets the 20 calls in flight finish OK; the next call is UNAVAILABLE`, async (t) => {
    const s = await setup(t, secure);
    const calls = Array.from({length: 20}, (_, i) => call(s, Buffer.from(`in flight ${i}`), {metadata: metadata({'x-delay-ms': '300'})}));
    await waitFor(() => s.server.stats.inFlight === 20, 20_000, '20 calls at the server');
    const shutdown = s.server.tryShutdown();
    const outcomes = await Promise.all(calls);
    outcomes.forEach((outcome, i) => assert.deepEqual(replyOf(outcome), Buffer.from(`in flight ${i}`)));
    await shutdown;
    const after = await call(s, Buffer.from('late'));
    assert.equal(after.ok === false && after.code, grpc.status.UNAVAILABLE, JSON.stringify(after));
  });
}

test('a server that allows 10 streams per connection: 500 calls at 100 in flight all succeed, at most 10 at once', async (t) => {
  const s = await setup(t, false, {'grpc.max_concurrent_streams': 10});
  const outcomes = await Promise.all(
    Array.from({length: 500}, (_, i) => call(s, Buffer.from(`r${i}`), {metadata: metadata({'x-delay-ms': '2'})})),
  );
  outcomes.forEach((outcome, i) => assert.deepEqual(replyOf(outcome), Buffer.from(`r${i}`)));
  assert.ok(s.server.stats.maxInFlight <= 10, `max in flight at the server: ${s.server.stats.maxInFlight}`);
});

test('mutual TLS with serverName: the client certificate reaches the server; a wrong CA fails as UNAVAILABLE naming the certificate', async (t) => {
  const server = await startEchoServer(t, {tls: {key: read('server.key'), cert: read('server.pem'), ca: read('ca.pem')}});
  const pool = new ChannelPool({
    target: server.address,
    transport: 'h2',
    tls: {
      ca: path.join(TLS_DIR, 'ca.pem'),
      cert: path.join(TLS_DIR, 'client.pem'),
      key: path.join(TLS_DIR, 'client.key'),
      serverName: 'localhost',
    },
  });
  t.after(() => pool.close());
  assert.deepEqual(replyOf(await callUnaryH2(pool.pickH2(), METHOD, Buffer.from('m'), {deadlineMs: 30_000})), Buffer.from('m'));

  const wrong = new ChannelPool({
    target: server.address,
    transport: 'h2',
    tls: {ca: path.join(TLS_DIR, 'server.pem'), serverName: 'localhost'},
  });
  t.after(() => wrong.close());
  const refused = await callUnaryH2(wrong.pickH2(), METHOD, Buffer.from('m'), {deadlineMs: 30_000});
  assert.equal(refused.ok === false && refused.code, grpc.status.UNAVAILABLE);
  assert.match(refused.ok === false ? refused.details : '', /^No connection established. Last error: .*certificate/i);
});

test('max receive message length: a larger reply fails RESOURCE_EXHAUSTED; max send length refuses before sending', async (t) => {
  const server = await startEchoServer(t);
  const pool = new ChannelPool({
    target: server.address,
    transport: 'h2',
    channelOptions: {'grpc.max_receive_message_length': 1000, 'grpc.max_send_message_length': 2000},
  });
  t.after(() => pool.close());
  const h2 = pool.pickH2();
  const big = await callUnaryH2(h2, METHOD, Buffer.from('a'), {deadlineMs: 30_000, metadata: metadata({'x-reply-bytes': '5000'})});
  assert.equal(big.ok === false && big.code, grpc.status.RESOURCE_EXHAUSTED);
  assert.match(big.ok === false ? big.details : '', /Received message larger than max \(5000 vs 1000\)/);
  const sent = await callUnaryH2(h2, METHOD, Buffer.alloc(3000), {deadlineMs: 30_000});
  assert.equal(sent.ok === false && sent.code, grpc.status.RESOURCE_EXHAUSTED);
  assert.equal(server.stats.calls, 1, 'the oversized request was not sent');
  assert.deepEqual(replyOf(await callUnaryH2(h2, METHOD, Buffer.from('ok'), {deadlineMs: 30_000})), Buffer.from('ok'));
});

test('no server: fail fast UNAVAILABLE with ECONNREFUSED, the channel in TRANSIENT_FAILURE; dns: resolves every address', async (t) => {
  const server = await startEchoServer(t);
  const port = server.port;
  server.forceShutdown();
  const pool = new ChannelPool({target: `dns:///localhost:${port}`, transport: 'h2'});
  t.after(() => pool.close());
  const outcome = await callUnaryH2(pool.pickH2(), METHOD, Buffer.from('a'), {deadlineMs: 30_000});
  assert.equal(outcome.ok === false && outcome.code, grpc.status.UNAVAILABLE);
  assert.match(outcome.ok === false ? outcome.details : '', /^No connection established. Last error: .*ECONNREFUSED/);
  assert.equal(pool.connectivity(false), grpc.connectivityState.TRANSIENT_FAILURE);
});

test('pick-first with fail-over: of ipv4:DEAD,LIVE the refused address is passed over and the call succeeds', async (t) => {
  const dead = await startEchoServer(t);
  const deadPort = dead.port;
  dead.forceShutdown();
  const live = await startEchoServer(t);
  const pool = new ChannelPool({target: `ipv4:127.0.0.1:${deadPort},127.0.0.1:${live.port}`, transport: 'h2'});
  t.after(() => pool.close());
  assert.deepEqual(replyOf(await callUnaryH2(pool.pickH2(), METHOD, Buffer.from('over'), {deadlineMs: 30_000})), Buffer.from('over'));
  assert.equal(live.stats.calls, 1);
});
