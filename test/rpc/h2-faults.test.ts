import assert from 'node:assert/strict';
import {test} from 'node:test';
import * as grpc from '@grpc/grpc-js';
import {ChannelPool} from '../../src/rpc/channel.js';
import {Flag, FrameType, H2_ERROR, Setting} from '../../src/rpc/h2-frames.js';
import {callUnaryH2} from '../../src/rpc/h2-transport.js';
import {waitFor} from '../helpers/cli.js';
import {block, client, codeOf, frame, grpcMessage, METHOD, startPeer} from '../helpers/h2-peer.js';

/**
 * Faults of an HTTP/2 server, from the fault-injecting peer (test/helpers/h2-peer.ts): resets
 * mid-reply, GOAWAY with streams in flight, settings lowered under the client's feet, a window that
 * never opens, PING floods, oversized headers, a close in the middle of a frame.
 */

test('RST_STREAM in the middle of a reply: INTERNAL naming the code; the connection serves the next call', async (t) => {
  let first = true;
  const peer = await startPeer(t, {
    onRequest: (c, id, message) => {
      if (!first) return c.reply(id, message);
      first = false;
      c.headers(
        id,
        [
          [':status', '200'],
          ['content-type', 'application/grpc'],
        ],
        false,
      );
      c.send(FrameType.DATA, 0, id, grpcMessage(Buffer.alloc(100)).subarray(0, 50));
      c.send(FrameType.RST_STREAM, 0, id, [0, 0, 0, H2_ERROR.INTERNAL_ERROR]);
    },
  });
  const call = client(t, peer);
  const reset = await call(Buffer.from('a'));
  assert.equal(codeOf(reset), grpc.status.INTERNAL);
  assert.match(reset.ok ? '' : reset.details, /Received RST_STREAM with code 2/);
  assert.deepEqual((await call(Buffer.from('b'))).ok && true, true);
  assert.equal(peer.connections.length, 1);
});

test('GOAWAY with 3 streams in flight: the one under last-stream-id finishes, the others go again on a new connection', async (t) => {
  const peer = await startPeer(t, {
    onRequest: (c, id, message) => {
      if (c !== peer.connections[0]) return c.reply(id, message);
      if (c.requests.size < 3) return;
      c.send(FrameType.GOAWAY, 0, 0, [0, 0, 0, 1, 0, 0, 0, 0]); // last stream id 1, NO_ERROR
      c.reply(1, c.requests.get(1)!);
    },
  });
  const call = client(t, peer);
  const outcomes = await Promise.all(['one', 'two', 'three'].map((text) => call(Buffer.from(text))));
  outcomes.forEach((outcome, i) => assert.deepEqual(outcome.ok && outcome.response, Buffer.from(['one', 'two', 'three'][i]!)));
  assert.equal(peer.connections.length, 2);
  assert.equal(peer.connections[1]!.requests.size, 2, 'the two streams above last-stream-id were sent again');
});

test('REFUSED_STREAM: the call is sent again and succeeds', async (t) => {
  let refused = 0;
  const peer = await startPeer(t, {
    onRequest: (c, id, message) => {
      if (refused++ === 0) return c.send(FrameType.RST_STREAM, 0, id, [0, 0, 0, H2_ERROR.REFUSED_STREAM]);
      c.reply(id, message);
    },
  });
  const outcome = await client(t, peer)(Buffer.from('again'));
  assert.deepEqual(outcome.ok && outcome.response, Buffer.from('again'));
  assert.equal(peer.connections[0]!.requests.size, 2);
});

test('no stream opens before the server SETTINGS come; MAX_CONCURRENT_STREAMS 1 and a 10-byte window are obeyed', async (t) => {
  let headersBeforeSettings = 0;
  let settingsSent = false;
  const peer = await startPeer(t, {
    settings: [
      [Setting.MAX_CONCURRENT_STREAMS, 1],
      [Setting.INITIAL_WINDOW_SIZE, 10],
    ],
    settingsWhen: (c) => {
      // Held back until the client's preface frames (SETTINGS, WINDOW_UPDATE) came and a turn passed.
      if (!c.frames.some((f) => f.type === FrameType.WINDOW_UPDATE && f.streamId === 0)) return false;
      setImmediate(() =>
        setImmediate(() => {
          settingsSent = true;
          c.settings([
            [Setting.MAX_CONCURRENT_STREAMS, 1],
            [Setting.INITIAL_WINDOW_SIZE, 10],
          ]);
        }),
      );
      return false;
    },
    onFrame: (c, type, _flags, streamId, payload) => {
      if (type === FrameType.HEADERS && !settingsSent) headersBeforeSettings++;
      if (type === FrameType.DATA) {
        assert.ok(payload.length <= 10, `a DATA frame of ${payload.length} bytes in a 10-byte window`);
        const increment = Buffer.alloc(4);
        increment.writeUInt32BE(payload.length);
        c.send(FrameType.WINDOW_UPDATE, 0, streamId, increment);
      }
    },
  });
  const call = client(t, peer);
  const requests = Array.from({length: 5}, (_, i) => Buffer.alloc(100, i + 1));
  const outcomes = await Promise.all(requests.map((r) => call(r)));
  outcomes.forEach((outcome, i) => assert.deepEqual(outcome.ok && outcome.response, requests[i]));
  assert.equal(headersBeforeSettings, 0);
  assert.equal(peer.connections[0]!.maxOpen, 1);
});

test('a window that never opens: DEADLINE_EXCEEDED, the stream reset, no DATA sent', async (t) => {
  const peer = await startPeer(t, {settings: [[Setting.INITIAL_WINDOW_SIZE, 0]]});
  const outcome = await client(t, peer)(Buffer.from('stuck'), 200);
  assert.equal(codeOf(outcome), grpc.status.DEADLINE_EXCEEDED);
  const c = peer.connections[0]!;
  await waitFor(() => c.frames.some((f) => f.type === FrameType.RST_STREAM), 20_000, 'RST_STREAM at the peer');
  assert.equal(c.frames.filter((f) => f.type === FrameType.DATA).length, 0);
  assert.equal(c.frames.find((f) => f.type === FrameType.RST_STREAM)!.payload.readUInt32BE(0), H2_ERROR.CANCEL);
});

test('a PING flood: every PING acked with its payload, and the call still answered', async (t) => {
  const pings = 5000;
  const peer = await startPeer(t, {
    onRequest: (c, id, message) => {
      const all = Buffer.concat(
        Array.from({length: pings}, (_, i) => {
          const payload = Buffer.alloc(8);
          payload.writeUInt32BE(i, 4);
          return frame(FrameType.PING, 0, 0, payload);
        }),
      );
      c.socket.write(all);
      c.reply(id, message);
    },
  });
  const outcome = await client(t, peer)(Buffer.from('pinged'));
  assert.deepEqual(outcome.ok && outcome.response, Buffer.from('pinged'));
  const c = peer.connections[0]!;
  await waitFor(() => c.frames.filter((f) => f.type === FrameType.PING).length === pings, 20_000, 'every PING acked');
  const acks = c.frames.filter((f) => f.type === FrameType.PING);
  assert.ok(acks.every((f, i) => f.flags === Flag.ACK && f.payload.readUInt32BE(4) === i));
});

test('oversized response headers: the call fails RESOURCE_EXHAUSTED and the connection stays usable; a header block over 256 KiB ends the connection', async (t) => {
  let n = 0;
  const peer = await startPeer(t, {
    onRequest: (c, id, message) => {
      n++;
      if (n === 2) return c.reply(id, message);
      const size = n === 1 ? 70_000 : 300_000;
      const fields = block([
        [':status', '200'],
        ['content-type', 'application/grpc'],
        ['x-big', 'b'.repeat(size)],
      ]);
      for (let at = 0; at < fields.length; at += 16_384) {
        const last = at + 16_384 >= fields.length;
        c.send(at === 0 ? FrameType.HEADERS : FrameType.CONTINUATION, last ? Flag.END_HEADERS : 0, id, fields.subarray(at, at + 16_384));
      }
      c.headers(id, [['grpc-status', '0']], true);
    },
  });
  const call = client(t, peer);
  const big = await call(Buffer.from('1'));
  assert.equal(codeOf(big), grpc.status.RESOURCE_EXHAUSTED, JSON.stringify(big));
  assert.deepEqual((await call(Buffer.from('2'))).ok, true);
  const huge = await call(Buffer.from('3'));
  assert.equal(codeOf(huge), grpc.status.INTERNAL);
  assert.match(huge.ok ? '' : huge.details, /ENHANCE_YOUR_CALM/);
  const c = peer.connections[0]!;
  await waitFor(() => c.frames.some((f) => f.type === FrameType.GOAWAY), 20_000, 'GOAWAY from the client');
  assert.equal(c.frames.find((f) => f.type === FrameType.GOAWAY)!.payload.readUInt32BE(4), H2_ERROR.ENHANCE_YOUR_CALM);
});

test('a server that closes in the middle of a frame: UNAVAILABLE, and the next call reconnects', async (t) => {
  let first = true;
  const peer = await startPeer(t, {
    onRequest: (c, id, message) => {
      if (!first) return c.reply(id, message);
      first = false;
      c.headers(
        id,
        [
          [':status', '200'],
          ['content-type', 'application/grpc'],
        ],
        false,
      );
      c.socket.end(frame(FrameType.DATA, 0, id, grpcMessage(Buffer.alloc(64))).subarray(0, 30));
    },
  });
  const call = client(t, peer);
  const cut = await call(Buffer.from('a'));
  assert.equal(codeOf(cut), grpc.status.UNAVAILABLE);
  assert.match(cut.ok ? '' : cut.details, /Connection dropped: .*in the middle of a frame/);
  assert.deepEqual((await call(Buffer.from('b'))).ok, true);
  assert.equal(peer.connections.length, 2);
});

test('a malformed frame from the server (PING of 7 bytes) is a connection error: GOAWAY FRAME_SIZE_ERROR, the call INTERNAL', async (t) => {
  const peer = await startPeer(t, {onRequest: (c) => c.send(FrameType.PING, 0, 0, Buffer.alloc(7))});
  const outcome = await client(t, peer)(Buffer.from('x'));
  assert.equal(codeOf(outcome), grpc.status.INTERNAL);
  assert.match(outcome.ok ? '' : outcome.details, /FRAME_SIZE_ERROR: PING of 7 bytes/);
  const c = peer.connections[0]!;
  await waitFor(() => c.frames.some((f) => f.type === FrameType.GOAWAY), 20_000, 'GOAWAY from the client');
  assert.equal(c.frames.find((f) => f.type === FrameType.GOAWAY)!.payload.readUInt32BE(4), H2_ERROR.FRAME_SIZE_ERROR);
});

test('keepalive: a server that stops answering PINGs is dropped after keepalive_timeout_ms; the call in flight fails UNAVAILABLE', async (t) => {
  const peer = await startPeer(t, {onRequest: () => undefined}); // never answers the call, never acks a PING
  const pool = new ChannelPool({
    target: peer.address,
    transport: 'h2',
    channelOptions: {'grpc.keepalive_time_ms': 50, 'grpc.keepalive_timeout_ms': 200},
  });
  t.after(() => pool.close());
  const outcome = await callUnaryH2(pool.pickH2(), METHOD, Buffer.from('k'), {deadlineMs: 60_000});
  assert.equal(codeOf(outcome), grpc.status.UNAVAILABLE);
  assert.match(outcome.ok ? '' : outcome.details, /keepalive ping not answered in 200ms/);
  assert.ok(
    peer.connections[0]!.frames.some((f) => f.type === FrameType.PING && f.flags === 0),
    'the client pinged',
  );
});
