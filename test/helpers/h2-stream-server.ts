import http2 from 'node:http2';
import type {AddressInfo} from 'node:net';
import type {TestContext} from 'node:test';
import protobuf from 'protobufjs';
import {DEMO_PROTO} from '../../src/util/paths.js';

/**
 * A gRPC server for `demo.v1.DemoService/ProcessStream` written on Node's http2, for the faults
 * grpc-js's server API cannot make: it answers each request at once, in order, and breaks some
 * streams mid-way at the HTTP/2 level. Real HTTP/2 on 127.0.0.1:0, gRPC's 5-byte framing.
 */
export interface H2StreamServerOptions {
  /** How a stream is broken: RST_STREAM INTERNAL_ERROR, the connection reset (TCP RST, as when a server process dies), trailers with grpc-status 0, or two answers to one request. */
  readonly how: 'reset' | 'drop-connection' | 'end-ok' | 'extra-response';
  /** A stream to break is broken when it reads this many requests (the last one unanswered). */
  readonly breakAfter: number;
  /** How many streams are broken, the first ones to reach `breakAfter`. */
  readonly breaks: number;
}

export interface H2StreamServer {
  readonly address: string;
  /** Requests read, per id (a record re-sent counts twice). */
  readonly seen: Map<string, number>;
  /** Streams opened, and broken. */
  readonly counts: {streams: number; broken: number; answered: number};
  stop(): Promise<void>;
}

export async function startH2StreamServer(t: TestContext, options: H2StreamServerOptions): Promise<H2StreamServer> {
  const root = protobuf.loadSync(DEMO_PROTO);
  const Request = root.lookupType('demo.v1.ProcessRequest');
  const Response = root.lookupType('demo.v1.ProcessResponse');
  const seen = new Map<string, number>();
  const counts = {streams: 0, broken: 0, answered: 0};
  const sessions = new Set<http2.ServerHttp2Session>();
  const server = http2.createServer();
  server.on('session', (session) => {
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
  });
  server.on('stream', (stream, headers) => {
    if (headers[':path'] !== '/demo.v1.DemoService/ProcessStream') {
      stream.respond(
        {':status': 200, 'content-type': 'application/grpc', 'grpc-status': '12', 'grpc-message': 'only ProcessStream'},
        {endStream: true},
      );
      return;
    }
    counts.streams++;
    stream.respond({':status': 200, 'content-type': 'application/grpc'}, {waitForTrailers: true});
    stream.on('wantTrailers', () => stream.sendTrailers({'grpc-status': '0'}));
    let buffered = Buffer.alloc(0);
    let read = 0;
    let broken = false;
    stream.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (!broken && buffered.length >= 5) {
        const length = buffered.readUInt32BE(1);
        if (buffered.length < 5 + length) break;
        const request = Request.toObject(Request.decode(buffered.subarray(5, 5 + length))) as {id?: string};
        buffered = buffered.subarray(5 + length);
        const id = request.id ?? '';
        const attempt = (seen.get(id) ?? 0) + 1;
        seen.set(id, attempt);
        read++;
        const extra = options.how === 'extra-response' && read === options.breakAfter && counts.broken < options.breaks;
        if (extra) counts.broken++;
        if (!extra && read === options.breakAfter && counts.broken < options.breaks) {
          counts.broken++;
          broken = true;
          if (options.how === 'reset') stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
          else if (options.how === 'drop-connection') (stream.session!.socket as import('node:net').Socket).resetAndDestroy();
          else stream.end();
          return;
        }
        const body = Response.encode(Response.fromObject({id, attempt})).finish();
        const frame = Buffer.alloc(5 + body.length);
        frame.writeUInt32BE(body.length, 1);
        frame.set(body, 5);
        counts.answered++;
        stream.write(frame);
        if (extra) stream.write(frame);
      }
    });
    stream.on('end', () => {
      if (!broken && !stream.closed) stream.end();
    });
    stream.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const {port} = server.address() as AddressInfo;
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= new Promise<void>((resolve) => {
      for (const session of sessions) session.destroy();
      server.close(() => resolve());
    }));
  t.after(stop);
  return {address: `127.0.0.1:${port}`, seen, counts, stop};
}
