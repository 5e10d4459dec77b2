import * as grpc from '@grpc/grpc-js';
import type {TestContext} from 'node:test';
import protobuf from 'protobufjs';
import type {MethodHandle} from '../../src/schema/method-handle.js';

/**
 * A grpc-js server with one raw-bytes unary method, `/test.Echo/Echo`, for transport tests that
 * check every byte: the reply is the request, unless the request metadata asks otherwise:
 * `x-reply-bytes: N` (N bytes, byte i = (request[0] + i) & 0xff), `x-fail: CODE` with
 * `x-fail-message`, `x-delay-ms: N`, `x-trailer-bin` (echoed as a binary trailer and header).
 */
export interface EchoServer {
  readonly port: number;
  readonly address: string;
  readonly stats: {calls: number; inFlight: number; maxInFlight: number; cancelled: number};
  /** Graceful: in-flight calls finish, new ones are refused. */
  tryShutdown(): Promise<void>;
  forceShutdown(): void;
}

export const ECHO_PATH = '/test.Echo/Echo';

const identity = (b: Buffer) => b;
const DEFINITION: grpc.ServiceDefinition = {
  Echo: {
    path: ECHO_PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};

export function expectedReply(request: Buffer, bytes: number): Buffer {
  const out = Buffer.allocUnsafe(bytes);
  const base = request[0] ?? 0;
  for (let i = 0; i < bytes; i++) out[i] = (base + i) & 0xff;
  return out;
}

export async function startEchoServer(
  t: TestContext,
  options: {tls?: {key: Buffer; cert: Buffer; ca?: Buffer}; serverOptions?: grpc.ServerOptions} = {},
): Promise<EchoServer> {
  const server = new grpc.Server(options.serverOptions);
  const stats = {calls: 0, inFlight: 0, maxInFlight: 0, cancelled: 0};
  server.addService(DEFINITION, {
    Echo(call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) {
      stats.calls++;
      stats.inFlight++;
      stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
      const get = (key: string) => call.metadata.get(key)[0];
      const delay = Number(get('x-delay-ms') ?? 0);
      let timer: NodeJS.Timeout | undefined;
      let done = false;
      call.on('cancelled', () => {
        if (timer) clearTimeout(timer);
        if (!done) stats.cancelled++, stats.inFlight--, (done = true);
      });
      const answer = () => {
        if (done) return;
        done = true;
        stats.inFlight--;
        const trailer = get('x-trailer-bin');
        if (trailer !== undefined) {
          const headers = new grpc.Metadata();
          headers.set('x-trailer-bin', trailer);
          headers.set('x-header', 'h1');
          call.sendMetadata(headers);
        }
        const fail = get('x-fail');
        if (fail !== undefined) {
          const metadata = new grpc.Metadata();
          if (trailer !== undefined) metadata.set('x-trailer-bin', trailer);
          callback({code: Number(fail), details: String(get('x-fail-message') ?? ''), metadata} as grpc.ServiceError);
          return;
        }
        const bytes = get('x-reply-bytes');
        const trailers = new grpc.Metadata();
        if (trailer !== undefined) trailers.set('x-trailer-bin', trailer);
        callback(null, bytes === undefined ? call.request : expectedReply(call.request, Number(bytes)), trailers);
      };
      if (delay > 0) timer = setTimeout(answer, delay);
      else answer();
    },
  });
  const credentials = options.tls
    ? grpc.ServerCredentials.createSsl(
        options.tls.ca ?? null,
        [{private_key: options.tls.key, cert_chain: options.tls.cert}],
        options.tls.ca !== undefined,
      )
    : grpc.ServerCredentials.createInsecure();
  const port = await new Promise<number>((ok, ko) => server.bindAsync('127.0.0.1:0', credentials, (e, p) => (e ? ko(e) : ok(p))));
  t.after(() => server.forceShutdown());
  return {
    port,
    address: `127.0.0.1:${port}`,
    stats,
    tryShutdown: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
    forceShutdown: () => server.forceShutdown(),
  };
}

/** A method handle for raw bytes: the response "decodes" to a Buffer copy. */
export function rawMethod(path = ECHO_PATH): MethodHandle {
  return {
    name: path.slice(1),
    kind: 'unary',
    path,
    requestType: 'bytes',
    responseType: 'bytes',
    encodeRequest: (() => Buffer.alloc(0)) as unknown as MethodHandle['encodeRequest'],
    decodeResponse: (bytes: Buffer) => Buffer.from(bytes),
    root: new protobuf.Root(),
    origin: 'test',
  };
}
