import assert from 'node:assert/strict';
import {test} from 'node:test';
import * as grpc from '@grpc/grpc-js';
import {ChannelPool} from '../../src/rpc/channel.js';
import {H2Channel} from '../../src/rpc/h2-channel.js';
import {MAX_CONTINUATIONS} from '../../src/rpc/h2-connection-headers.js';
import {MAX_HEADER_LIST_SIZE} from '../../src/rpc/h2-connection-settings.js';
import {Flag, FrameType, H2_ERROR, Setting} from '../../src/rpc/h2-frames.js';
import {callUnaryH2, createH2Context} from '../../src/rpc/h2-transport.js';
import {waitFor} from '../helpers/cli.js';
import {block, client, codeOf, frame, METHOD, startPeer, type PeerConnection} from '../helpers/h2-peer.js';

/**
 * The `h2` client's protocol hardening, each against a real socket peer (test/helpers/h2-peer.ts):
 * CONTINUATION, PING and SETTINGS floods, stream ids running out, `too_many_pings`, and
 * SETTINGS_MAX_HEADER_LIST_SIZE both ways.
 */

const goawayCode = (c: PeerConnection) => c.frames.find((f) => f.type === FrameType.GOAWAY)?.payload.readUInt32BE(4);

test('a CONTINUATION flood (empty frames past the limit) and a frame inside a header block are connection errors: GOAWAY, the call INTERNAL', async (t) => {
  const cases = [
    {
      what: 'flood',
      code: H2_ERROR.ENHANCE_YOUR_CALM,
      details: new RegExp(`ENHANCE_YOUR_CALM: a header block over .* or ${MAX_CONTINUATIONS} frames`),
    },
    {
      what: 'interleaved',
      code: H2_ERROR.PROTOCOL_ERROR,
      details: /PROTOCOL_ERROR: 0 frame in the middle of a header block \(CONTINUATION expected\)/,
    },
  ];
  for (const {what, code, details} of cases) {
    const peer = await startPeer(t, {
      onRequest: (c, id) => {
        c.send(FrameType.HEADERS, 0, id, block([[':status', '200']])); // no END_HEADERS
        if (what === 'interleaved') return c.send(FrameType.DATA, 0, id, Buffer.alloc(5));
        // Empty CONTINUATIONs cost the server nothing: only the frame count can stop them.
        c.socket.write(Buffer.concat(Array.from({length: MAX_CONTINUATIONS * 4}, () => frame(FrameType.CONTINUATION, 0, id))));
      },
    });
    const outcome = await client(t, peer)(Buffer.from(what));
    assert.equal(codeOf(outcome), grpc.status.INTERNAL, what);
    assert.match(outcome.ok ? '' : outcome.details, details);
    const c = peer.connections[0]!;
    await waitFor(() => goawayCode(c) !== undefined, 20_000, `GOAWAY from the client (${what})`);
    assert.equal(goawayCode(c), code, what);
  }
});

for (const flood of ['PING', 'SETTINGS'] as const) {
  test(`a ${flood} flood from a server that does not read its acks: past 16 MiB unsent the connection ends ENHANCE_YOUR_CALM, the call INTERNAL`, async (t) => {
    const one = flood === 'PING' ? frame(FrameType.PING, 0, 0, Buffer.alloc(8)) : frame(FrameType.SETTINGS, 0, 0);
    const chunk = Buffer.concat(Array.from({length: 32_768}, () => one));
    const limit = 64 << 20; // acks at most this many bytes: 16 MiB over the socket buffers, with room
    let done = false;
    let sent = 0;
    const peer = await startPeer(t, {
      onRequest: (c) => {
        c.socket.pause(); // reads nothing more: every ack the client writes stays in its buffers
        const more = () => {
          while (!done && sent < limit) {
            sent += chunk.length;
            if (!c.socket.write(chunk)) return void c.socket.once('drain', more);
          }
        };
        more();
      },
    });
    const outcome = await client(t, peer)(Buffer.from('flooded'), 120_000);
    done = true;
    assert.equal(codeOf(outcome), grpc.status.INTERNAL, JSON.stringify(outcome));
    assert.match(
      outcome.ok ? '' : outcome.details,
      /ENHANCE_YOUR_CALM: over 16 MiB of acks the server does not read \(a PING or SETTINGS flood\)/,
    );
    assert.ok(sent >= 16 << 20, `the peer sent ${sent} bytes of ${flood} frames`);
  });
}

test('stream ids used up: the connection drains after the last odd id, the calls after it go on a new connection, every call OK', async (t) => {
  const peer = await startPeer(t);
  const first = 2 ** 31 - 5; // three ids left: 2^31-5, 2^31-3, 2^31-1
  const channel = new H2Channel({target: peer.address, firstStreamId: first});
  t.after(() => channel.close());
  const context = createH2Context(channel, {});
  const requests = Array.from({length: 5}, (_, i) => Buffer.from(`call ${i}`));
  const outcomes = await Promise.all(requests.map((r) => callUnaryH2(context, METHOD, r, {deadlineMs: 30_000})));
  outcomes.forEach((outcome, i) => assert.deepEqual(outcome.ok && outcome.response, requests[i]));
  assert.equal(peer.connections.length, 2);
  const [used, next] = peer.connections as [PeerConnection, PeerConnection];
  assert.deepEqual([...used.requests.keys()], [first, first + 2, first + 4]);
  assert.deepEqual([...next.requests.keys()], [first, first + 2]);
  await waitFor(() => goawayCode(used) !== undefined, 20_000, 'GOAWAY from the client on the used-up connection');
  assert.equal(goawayCode(used), H2_ERROR.NO_ERROR, 'closed once drained, not for an error');
});

test('GOAWAY ENHANCE_YOUR_CALM "too_many_pings": the next connection pings half as often, and the call in flight still ends OK', async (t) => {
  const started = new Map<PeerConnection, number>();
  const firstPing = new Map<PeerConnection, number>();
  const peer = await startPeer(t, {
    onRequest: () => undefined, // answered once the connection's first PING came
    onFrame: (c, type, flags) => {
      if (!started.has(c)) started.set(c, performance.now());
      if (type !== FrameType.PING || flags & Flag.ACK || firstPing.has(c)) return;
      firstPing.set(c, performance.now());
      c.send(FrameType.PING, Flag.ACK, 0, Buffer.alloc(8));
      const index = peer.connections.indexOf(c);
      if (index < 2) {
        const payload = Buffer.concat([
          Buffer.from([0x7f, 0xff, 0xff, 0xff, 0, 0, 0, H2_ERROR.ENHANCE_YOUR_CALM]),
          Buffer.from('too_many_pings'),
        ]);
        c.send(FrameType.GOAWAY, 0, 0, payload);
      }
      for (const [id, message] of c.requests) c.reply(id, message);
    },
  });
  const every = 100;
  const pool = new ChannelPool({target: peer.address, transport: 'h2', channelOptions: {'grpc.keepalive_time_ms': every}});
  t.after(() => pool.close());
  for (let i = 0; i < 3; i++) {
    const outcome = await callUnaryH2(pool.pickH2(), METHOD, Buffer.from(`call ${i}`), {deadlineMs: 60_000});
    assert.deepEqual(outcome.ok && outcome.response, Buffer.from(`call ${i}`), `call ${i}`);
    assert.equal(peer.connections.length, i + 1, 'one connection per call: each ended by its GOAWAY');
    const c = peer.connections[i]!;
    // Wait for the client to have read the GOAWAY: it closes the drained connection with its own.
    if (i < 2) await waitFor(() => goawayCode(c) === H2_ERROR.NO_ERROR, 20_000, `the client's GOAWAY on connection ${i}`);
  }
  // A lower bound only: a loaded machine makes a ping later, never sooner. Without the back-off
  // the third connection would ping after 100 ms, as the first did.
  const gap = (i: number) => firstPing.get(peer.connections[i]!)! - started.get(peer.connections[i]!)!;
  assert.ok(gap(1) >= 2 * every - 10, `connection 2 pinged after ${gap(1).toFixed(0)} ms`);
  assert.ok(gap(2) >= 4 * every - 10, `connection 3 pinged after ${gap(2).toFixed(0)} ms (keepalive doubled twice)`);
});

test("MAX_HEADER_LIST_SIZE both ways: ours is advertised; a request over the server's fails INTERNAL unsent, and the connection serves the next call", async (t) => {
  const serverLimit = 1000;
  const peer = await startPeer(t, {settings: [[Setting.MAX_HEADER_LIST_SIZE, serverLimit]]});
  const pool = new ChannelPool({target: peer.address, transport: 'h2'});
  t.after(() => pool.close());
  const call = (value: string) => {
    const metadata = new grpc.Metadata();
    metadata.set('x-big', value);
    return callUnaryH2(pool.pickH2(), METHOD, Buffer.from(value.slice(0, 10)), {deadlineMs: 30_000, metadata});
  };
  const big = await call('b'.repeat(serverLimit));
  assert.equal(codeOf(big), grpc.status.INTERNAL, JSON.stringify(big));
  assert.match(
    big.ok ? '' : big.details,
    /the request's header list is \d+ bytes, over the server's limit of 1000 \(SETTINGS_MAX_HEADER_LIST_SIZE\): send less metadata/,
  );
  const c = peer.connections[0]!;
  assert.equal(c.frames.filter((f) => f.type === FrameType.HEADERS).length, 0, 'nothing sent');
  const small = await call('small');
  assert.deepEqual(small.ok && small.response, Buffer.from('small'));
  assert.equal(peer.connections.length, 1);
  const settings = c.frames.find((f) => f.type === FrameType.SETTINGS && !(f.flags & Flag.ACK))!.payload;
  const advertised = new Map<number, number>();
  for (let at = 0; at < settings.length; at += 6) advertised.set(settings.readUInt16BE(at), settings.readUInt32BE(at + 2));
  assert.equal(advertised.get(Setting.MAX_HEADER_LIST_SIZE), MAX_HEADER_LIST_SIZE);
});
