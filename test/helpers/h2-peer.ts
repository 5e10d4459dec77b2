import {createServer, type Socket} from 'node:net';
import type {TestContext} from 'node:test';
import type {CallOutcome} from '../../src/rpc/call.js';
import {ChannelPool} from '../../src/rpc/channel.js';
import {Flag, FrameParser, FrameType, writeFrameHeader} from '../../src/rpc/h2-frames.js';
import {callUnaryH2} from '../../src/rpc/h2-transport.js';
import {encodeLiteral, HpackDecoder} from '../../src/rpc/hpack.js';
import {rawMethod} from './echo-server.js';

/**
 * A fault-injecting HTTP/2 server written on node:net, for what a well-behaved server never does
 * (test/rpc/h2-faults.test.ts, h2-hardening.test.ts): resets mid-reply, GOAWAY with streams in
 * flight, settings lowered under the client's feet, a window that never opens, floods, oversized
 * headers, a close in the middle of a frame.
 */

/** The raw-bytes method the peer answers (any path: it reads no header). */
export const METHOD = rawMethod();
const PREFACE_BYTES = 24;

export interface PeerConnection {
  readonly socket: Socket;
  /** Frames received, in order (type, flags, stream). */
  readonly frames: {type: number; flags: number; streamId: number; payload: Buffer}[];
  /** Streams whose request ended: their request message. */
  readonly requests: Map<number, Buffer>;
  /** Streams open now (request headers seen, not yet answered or reset by either side). */
  readonly open: Set<number>;
  maxOpen: number;
  send(type: number, flags: number, streamId: number, payload?: Buffer | number[]): void;
  settings(entries: [number, number][]): void;
  /** A whole OK reply: headers, the message, trailers. */
  reply(streamId: number, message: Buffer, status?: number, messageText?: string): void;
  headers(streamId: number, fields: [string, string][], endStream: boolean): void;
}

export interface Peer {
  readonly address: string;
  readonly connections: PeerConnection[];
}

export interface PeerBehaviour {
  /** Sent first; @default [] (all defaults) */
  readonly settings?: [number, number][];
  /** Hold the server's SETTINGS back until this returns true (checked on each client frame). */
  readonly settingsWhen?: (connection: PeerConnection) => boolean;
  /** A request ended (END_STREAM). @default answer it OK with the request echoed */
  readonly onRequest?: (connection: PeerConnection, streamId: number, message: Buffer) => void;
  /** Any frame from the client. */
  readonly onFrame?: (connection: PeerConnection, type: number, flags: number, streamId: number, payload: Buffer) => void;
}

export function frame(type: number, flags: number, streamId: number, payload: Buffer | number[] = []): Buffer {
  const body = Buffer.from(payload);
  const out = Buffer.alloc(9 + body.length);
  writeFrameHeader(out, 0, body.length, type, flags, streamId);
  body.copy(out, 9);
  return out;
}

export function block(fields: [string, string][]): Buffer {
  const out: number[] = [];
  for (const [name, value] of fields) encodeLiteral(out, name, value);
  return Buffer.from(out);
}

export function grpcMessage(message: Buffer): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(message.length, 1);
  return Buffer.concat([prefix, message]);
}

export async function startPeer(t: TestContext, behaviour: PeerBehaviour = {}): Promise<Peer> {
  const connections: PeerConnection[] = [];
  const server = createServer((socket) => {
    const parser = new FrameParser();
    const decoder = new HpackDecoder();
    const bodies = new Map<number, Buffer[]>();
    let preface = Buffer.alloc(0);
    let settingsSent = false;
    const connection: PeerConnection = {
      socket,
      frames: [],
      requests: new Map(),
      open: new Set(),
      maxOpen: 0,
      send: (type, flags, streamId, payload = []) => {
        if (!socket.destroyed) socket.write(frame(type, flags, streamId, payload));
      },
      settings: (entries) => {
        const payload = Buffer.alloc(entries.length * 6);
        entries.forEach(([id, value], i) => {
          payload.writeUInt16BE(id, i * 6);
          payload.writeUInt32BE(value, i * 6 + 2);
        });
        connection.send(FrameType.SETTINGS, 0, 0, payload);
      },
      headers: (streamId, fields, endStream) => {
        if (endStream) connection.open.delete(streamId);
        connection.send(FrameType.HEADERS, Flag.END_HEADERS | (endStream ? Flag.END_STREAM : 0), streamId, block(fields));
      },
      reply: (streamId, message, status = 0, messageText = '') => {
        connection.headers(
          streamId,
          [
            [':status', '200'],
            ['content-type', 'application/grpc'],
          ],
          false,
        );
        if (status === 0) connection.send(FrameType.DATA, 0, streamId, grpcMessage(message));
        connection.headers(
          streamId,
          [['grpc-status', String(status)], ...(messageText ? [['grpc-message', messageText] as [string, string]] : [])],
          true,
        );
      },
    };
    connections.push(connection);
    const sendSettings = () => {
      if (settingsSent) return;
      settingsSent = true;
      connection.settings(behaviour.settings ?? []);
    };
    if (!behaviour.settingsWhen) sendSettings();
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => {
      if (preface.length < PREFACE_BYTES) {
        const need = PREFACE_BYTES - preface.length;
        preface = Buffer.concat([preface, chunk.subarray(0, need)]);
        chunk = chunk.subarray(need);
      }
      parser.push(chunk, (type, flags, streamId, payload) => {
        const copy = Buffer.from(payload);
        connection.frames.push({type, flags, streamId, payload: copy});
        if (!settingsSent && behaviour.settingsWhen?.(connection)) sendSettings();
        if (type === FrameType.SETTINGS && !(flags & Flag.ACK)) connection.send(FrameType.SETTINGS, Flag.ACK, 0);
        if (type === FrameType.HEADERS) {
          decoder.decode(copy);
          connection.open.add(streamId);
          connection.maxOpen = Math.max(connection.maxOpen, connection.open.size);
          bodies.set(streamId, []);
        }
        if (type === FrameType.RST_STREAM) connection.open.delete(streamId);
        if (type === FrameType.DATA) {
          bodies.get(streamId)?.push(copy);
          if (flags & Flag.END_STREAM) {
            const message = Buffer.concat(bodies.get(streamId) ?? []).subarray(5);
            connection.requests.set(streamId, message);
            (behaviour.onRequest ?? ((c, id, m) => c.reply(id, m)))(connection, streamId, message);
          }
        }
        behaviour.onFrame?.(connection, type, flags, streamId, copy);
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    for (const c of connections) c.socket.destroy();
    server.close();
  });
  const port = (server.address() as {port: number}).port;
  return {address: `127.0.0.1:${port}`, connections};
}

/** An `h2` call function on a new channel to the peer. */
export function client(t: TestContext, peer: Peer) {
  const pool = new ChannelPool({target: peer.address, transport: 'h2'});
  t.after(() => pool.close());
  const h2 = pool.pickH2();
  return (request: Buffer, deadlineMs = 30_000): Promise<CallOutcome> => callUnaryH2(h2, METHOD, request, {deadlineMs});
}

export function codeOf(outcome: CallOutcome): number {
  return outcome.ok ? 0 : outcome.code;
}
