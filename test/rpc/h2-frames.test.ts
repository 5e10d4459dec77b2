import assert from 'node:assert/strict';
import {test} from 'node:test';
import fc from 'fast-check';
import {Flag, FrameParser, framePayload, FrameType, H2ConnectionError, H2_ERROR, writeFrameHeader} from '../../src/rpc/h2-frames.js';

/** The frame parser: frames cut anywhere come out whole; any bytes give frames or a connection error, nothing else. */

interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

function serialize(frames: Frame[]): Buffer {
  return Buffer.concat(
    frames.map((f) => {
      const out = Buffer.alloc(9 + f.payload.length);
      writeFrameHeader(out, 0, f.payload.length, f.type, f.flags, f.streamId);
      f.payload.copy(out, 9);
      return out;
    }),
  );
}

function parseAll(chunks: Buffer[], maxFrameSize?: number): Frame[] {
  const parser = new FrameParser(maxFrameSize);
  const frames: Frame[] = [];
  for (const chunk of chunks)
    parser.push(chunk, (type, flags, streamId, payload) => frames.push({type, flags, streamId, payload: Buffer.from(payload)}));
  return frames;
}

/** Frames that obey each type's rules. */
const validFrame: fc.Arbitrary<Frame> = fc.oneof(
  fc.record({
    type: fc.constant(FrameType.DATA),
    flags: fc.constantFrom(0, Flag.END_STREAM),
    streamId: fc.integer({min: 1, max: 2 ** 31 - 1}),
    payload: fc.uint8Array({maxLength: 300}).map((a) => Buffer.from(a)),
  }),
  fc.record({
    type: fc.constant(FrameType.HEADERS),
    flags: fc.constantFrom(Flag.END_HEADERS, Flag.END_HEADERS | Flag.END_STREAM),
    streamId: fc.integer({min: 1, max: 99}),
    payload: fc.uint8Array({maxLength: 100}).map((a) => Buffer.from(a)),
  }),
  fc.record({
    type: fc.constant(FrameType.PING),
    flags: fc.constantFrom(0, Flag.ACK),
    streamId: fc.constant(0),
    payload: fc.uint8Array({minLength: 8, maxLength: 8}).map((a) => Buffer.from(a)),
  }),
  fc.record({
    type: fc.constant(FrameType.SETTINGS),
    flags: fc.constant(0),
    streamId: fc.constant(0),
    payload: fc.array(fc.uint8Array({minLength: 6, maxLength: 6}), {maxLength: 5}).map((a) => Buffer.concat(a.map((x) => Buffer.from(x)))),
  }),
  fc.record({
    type: fc.constantFrom(FrameType.WINDOW_UPDATE, FrameType.RST_STREAM),
    flags: fc.constant(0),
    streamId: fc.integer({min: 1, max: 99}),
    payload: fc.uint8Array({minLength: 4, maxLength: 4}).map((a) => Buffer.from(a)),
  }),
  fc.record({
    type: fc.constant(FrameType.GOAWAY),
    flags: fc.constant(0),
    streamId: fc.constant(0),
    payload: fc.uint8Array({minLength: 8, maxLength: 40}).map((a) => Buffer.from(a)),
  }),
  fc.record({
    type: fc.integer({min: 10, max: 255}),
    flags: fc.integer({min: 0, max: 255}),
    streamId: fc.integer({min: 0, max: 99}),
    payload: fc.uint8Array({maxLength: 50}).map((a) => Buffer.from(a)),
  }),
);

/** Cuts `bytes` at the given points. */
function cut(bytes: Buffer, points: number[]): Buffer[] {
  const sorted = [...new Set(points.map((p) => p % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const point of sorted) {
    chunks.push(bytes.subarray(from, point));
    from = point;
  }
  chunks.push(bytes.subarray(from));
  return chunks;
}

test('property: valid frames, cut into chunks anywhere, parse back to the same frames', () => {
  fc.assert(
    fc.property(fc.array(validFrame, {maxLength: 20}), fc.array(fc.nat(), {maxLength: 30}), (frames, points) => {
      assert.deepEqual(
        parseAll(cut(serialize(frames), points)),
        frames.map((f) => ({...f})),
      );
    }),
    {numRuns: 500},
  );
});

test('property: arbitrary bytes give frames or an H2ConnectionError, never another throw', () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({maxLength: 100}), {maxLength: 6}), (chunks) => {
      try {
        parseAll(chunks.map((c) => Buffer.from(c)));
      } catch (error) {
        assert.ok(error instanceof H2ConnectionError, String(error));
      }
    }),
    {numRuns: 3000},
  );
});

test("each frame type's size and stream rules are connection errors with the RFC 9113 code", () => {
  const bad: [Frame, number, RegExp][] = [
    [{type: FrameType.PING, flags: 0, streamId: 0, payload: Buffer.alloc(7)}, H2_ERROR.FRAME_SIZE_ERROR, /PING of 7 bytes/],
    [{type: FrameType.PING, flags: 0, streamId: 1, payload: Buffer.alloc(8)}, H2_ERROR.PROTOCOL_ERROR, /PING on stream 1/],
    [{type: FrameType.SETTINGS, flags: 0, streamId: 0, payload: Buffer.alloc(5)}, H2_ERROR.FRAME_SIZE_ERROR, /multiple of 6/],
    [{type: FrameType.SETTINGS, flags: Flag.ACK, streamId: 0, payload: Buffer.alloc(6)}, H2_ERROR.FRAME_SIZE_ERROR, /ACK with a payload/],
    [
      {type: FrameType.WINDOW_UPDATE, flags: 0, streamId: 0, payload: Buffer.alloc(3)},
      H2_ERROR.FRAME_SIZE_ERROR,
      /WINDOW_UPDATE of 3 bytes/,
    ],
    [{type: FrameType.RST_STREAM, flags: 0, streamId: 0, payload: Buffer.alloc(4)}, H2_ERROR.PROTOCOL_ERROR, /RST_STREAM on stream 0/],
    [{type: FrameType.DATA, flags: 0, streamId: 0, payload: Buffer.alloc(1)}, H2_ERROR.PROTOCOL_ERROR, /DATA on stream 0/],
    [{type: FrameType.GOAWAY, flags: 0, streamId: 0, payload: Buffer.alloc(7)}, H2_ERROR.FRAME_SIZE_ERROR, /GOAWAY of 7 bytes/],
    [
      {type: FrameType.DATA, flags: 0, streamId: 1, payload: Buffer.alloc(20_000)},
      H2_ERROR.FRAME_SIZE_ERROR,
      /above SETTINGS_MAX_FRAME_SIZE/,
    ],
  ];
  for (const [frame, code, message] of bad) {
    assert.throws(
      () => parseAll([serialize([frame])]),
      (e: unknown) => e instanceof H2ConnectionError && e.code === code && message.test(e.message),
      message.source,
    );
  }
});

test('padding is removed from DATA and HEADERS; padding longer than the frame is a PROTOCOL_ERROR', () => {
  assert.deepEqual(framePayload(FrameType.DATA, Flag.PADDED, Buffer.from([2, 0x61, 0x62, 0, 0])), Buffer.from('ab'));
  assert.deepEqual(
    framePayload(FrameType.HEADERS, Flag.PADDED | Flag.PRIORITY, Buffer.from([1, 0, 0, 0, 3, 16, 0x82, 0])),
    Buffer.from([0x82]),
  );
  assert.throws(
    () => framePayload(FrameType.DATA, Flag.PADDED, Buffer.from([5, 0x61])),
    (e: unknown) => e instanceof H2ConnectionError && e.code === H2_ERROR.PROTOCOL_ERROR,
  );
});
