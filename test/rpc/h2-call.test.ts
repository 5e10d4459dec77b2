import assert from 'node:assert/strict';
import {test} from 'node:test';
import * as grpc from '@grpc/grpc-js';
import type {CallOutcome} from '../../src/rpc/call.js';
import {H2UnaryCall, percentDecode} from '../../src/rpc/h2-call.js';
import type {H2Channel} from '../../src/rpc/h2-channel.js';
import {rawMethod} from '../helpers/echo-server.js';

/** The call's own rules, with the frames handed to it directly (no connection). */

/** A channel that only records what the call asks of it. */
function quietChannel() {
  const asked: string[] = [];
  const channel = {
    start: () => asked.push('start'),
    cancel: () => asked.push('cancel'),
    track: () => asked.push('track'),
    untrack: () => asked.push('untrack'),
  };
  return {channel: channel as unknown as H2Channel, asked};
}

function framed(message: Buffer): Buffer {
  const out = Buffer.alloc(5 + message.length);
  out.writeUInt32BE(message.length, 1);
  message.copy(out, 5);
  return out;
}

function answer(deadline: number, trailers: string[]): Promise<CallOutcome> {
  const {channel} = quietChannel();
  return new Promise((resolve) => {
    const call = new H2UnaryCall(
      channel,
      rawMethod(),
      Buffer.from('q'),
      {head: Buffer.alloc(0), deadline, waitForReady: false, recordMetadata: false, maxReceiveBytes: -1, inFlight: undefined},
      resolve,
    );
    call.onHeaders([':status', '200', 'content-type', 'application/grpc'], false);
    call.onData(framed(Buffer.from('reply')), false);
    call.onHeaders(trailers, true);
  });
}

test("an OK answer in the deadline's own millisecond is DEADLINE_EXCEEDED (the deadline compared with >=)", async () => {
  for (let i = 0; i < 20; i++) await answer(Infinity, ['grpc-status', '0']); // compiled, so the answer below takes microseconds
  const start = Date.now();
  while (Date.now() === start); // at the start of a millisecond: the answer comes within it
  const outcome = await answer(Date.now(), ['grpc-status', '0']);
  assert.equal(outcome.ok === false && outcome.code, grpc.status.DEADLINE_EXCEEDED);
  const inTime = await answer(Date.now() + 60_000, ['grpc-status', '0']);
  assert.deepEqual(inTime.ok && inTime.response, Buffer.from('reply'));
});

test('grpc-message is percent-decoded UTF-8; a malformed escape is kept', async () => {
  const outcome = await answer(Infinity, ['grpc-status', '5', 'grpc-message', 'caf%C3%A9 %2C 100%25 %zz']);
  assert.equal(outcome.ok === false && outcome.details, 'café , 100% %zz');
  assert.equal(percentDecode('plain'), 'plain');
});

test('a reply spread over DATA frames cut anywhere is put back together; two replies are UNIMPLEMENTED', async () => {
  const {channel} = quietChannel();
  const message = Buffer.from('0123456789abcdef');
  const whole = framed(message);
  for (let cut = 1; cut < whole.length; cut++) {
    const outcome = await new Promise<CallOutcome>((resolve) => {
      const call = new H2UnaryCall(
        channel,
        rawMethod(),
        Buffer.from('q'),
        {head: Buffer.alloc(0), deadline: Infinity, waitForReady: false, recordMetadata: false, maxReceiveBytes: -1, inFlight: undefined},
        resolve,
      );
      call.onHeaders([':status', '200'], false);
      call.onData(whole.subarray(0, cut), false);
      call.onData(whole.subarray(cut), false);
      call.onHeaders(['grpc-status', '0'], true);
    });
    assert.deepEqual(outcome.ok && outcome.response, message, `cut at ${cut}`);
  }
  const twice = await new Promise<CallOutcome>((resolve) => {
    const call = new H2UnaryCall(
      channel,
      rawMethod(),
      Buffer.from('q'),
      {head: Buffer.alloc(0), deadline: Infinity, waitForReady: false, recordMetadata: false, maxReceiveBytes: -1, inFlight: undefined},
      resolve,
    );
    call.onHeaders([':status', '200'], false);
    call.onData(Buffer.concat([whole, whole]), false);
  });
  assert.equal(twice.ok === false && twice.code, grpc.status.UNIMPLEMENTED);
});

test('a compressed reply is refused with a status that says so; an HTTP 503 without grpc-status is UNAVAILABLE', async () => {
  const {channel} = quietChannel();
  const compressed = await new Promise<CallOutcome>((resolve) => {
    const call = new H2UnaryCall(
      channel,
      rawMethod(),
      Buffer.from('q'),
      {head: Buffer.alloc(0), deadline: Infinity, waitForReady: false, recordMetadata: false, maxReceiveBytes: -1, inFlight: undefined},
      resolve,
    );
    call.onHeaders([':status', '200', 'grpc-encoding', 'gzip'], false);
  });
  assert.equal(compressed.ok === false && compressed.code, grpc.status.UNIMPLEMENTED);
  assert.match(compressed.ok === false ? compressed.details : '', /grpc-encoding: gzip.*identity only/);
  const http = await answer(Infinity, []);
  assert.equal(http.ok === false && http.code, grpc.status.UNKNOWN);
  const unavailable = await new Promise<CallOutcome>((resolve) => {
    const call = new H2UnaryCall(
      channel,
      rawMethod(),
      Buffer.from('q'),
      {head: Buffer.alloc(0), deadline: Infinity, waitForReady: false, recordMetadata: false, maxReceiveBytes: -1, inFlight: undefined},
      resolve,
    );
    call.onHeaders([':status', '503'], true);
  });
  assert.equal(unavailable.ok === false && unavailable.code, grpc.status.UNAVAILABLE);
  assert.equal(unavailable.ok === false && unavailable.details, 'Received HTTP status code 503');
});
