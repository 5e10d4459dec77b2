import path from 'node:path';
import type {TestContext} from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import {ReflectionService} from '@grpc/reflection';
import {ReflectionV1AlphaImplementation} from '@grpc/reflection/build/src/implementations/reflection-v1alpha.js';
import {PACKAGE_ROOT} from '../../src/util/paths.js';

/**
 * A grpc-js server on 127.0.0.1:0 with `jsonfx.v1.JsonService/Echo` (test/fixtures/protos/json.proto)
 * and `demo.v1.DemoService/Process`, both answering with the request's own bytes unless `answer`
 * says otherwise, and server reflection from @grpc/reflection (v1 and v1alpha, or v1alpha only, or
 * none). It records every call: its path, metadata, size and arrival time.
 */

export const JSON_PROTO = path.join(PACKAGE_ROOT, 'test', 'fixtures', 'protos', 'json.proto');
export const JSON_PROTOSET = path.join(PACKAGE_ROOT, 'test', 'fixtures', 'protos', 'json.protoset');
export const DEMO_PROTOSET = path.join(PACKAGE_ROOT, 'test', 'fixtures', 'protos', 'demo.protoset');
export const ECHO = 'jsonfx.v1.JsonService/Echo';

export interface SeenCall {
  readonly path: string;
  readonly metadata: Record<string, string>;
  readonly bytes: number;
  /** performance.now() at arrival. */
  readonly at: number;
  /** Calls with the same path before this one, plus one. */
  readonly attempt: number;
}

export interface Answer {
  readonly response?: Buffer;
  readonly error?: {readonly code: grpc.status; readonly details: string; readonly trailers?: grpc.Metadata};
  /** Response headers sent before the answer. */
  readonly headers?: grpc.Metadata;
  /** Answer this long after the call arrived. @default 0 */
  readonly delayMs?: number;
}

export interface SchemaServerOptions {
  /** @default 'both' */
  readonly reflection?: 'both' | 'v1alpha' | 'none';
  readonly serverOptions?: grpc.ServerOptions;
  /** Serve TLS with this PEM key and certificate. @default plaintext */
  /** `ca`: require a client certificate signed by it (mutual TLS). */
  readonly tls?: {readonly key: Buffer; readonly cert: Buffer; readonly ca?: Buffer};
  /** How to answer a call; default: echo the request bytes. */
  readonly answer?: (call: SeenCall, request: Buffer) => Answer;
}

export interface SchemaServer {
  readonly address: string;
  /** Every call of the two services, in order. */
  readonly calls: SeenCall[];
  /** Metadata of every reflection stream. */
  readonly reflectionMetadata: Record<string, string>[];
}

const raw = (name: string) => ({
  path: `/${name}`,
  requestStream: false,
  responseStream: false,
  requestSerialize: (b: Buffer) => b,
  requestDeserialize: (b: Buffer) => b,
  responseSerialize: (b: Buffer) => b,
  responseDeserialize: (b: Buffer) => b,
});

export async function startSchemaServer(t: TestContext, options: SchemaServerOptions = {}): Promise<SchemaServer> {
  const server = new grpc.Server(options.serverOptions);
  const calls: SeenCall[] = [];
  const reflectionMetadata: Record<string, string>[] = [];
  const handle = (name: string) => (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
    const seen: SeenCall = {
      path: name,
      metadata: Object.fromEntries(
        Object.entries(call.metadata.getMap()).map(([k, v]) => [k, Buffer.isBuffer(v) ? v.toString('base64') : String(v)]),
      ),
      bytes: call.request.length,
      at: performance.now(),
      attempt: calls.filter((c) => c.path === name).length + 1,
    };
    calls.push(seen);
    const answer = options.answer?.(seen, call.request) ?? {response: call.request};
    const reply = () => {
      if (call.cancelled) return;
      if (answer.headers) call.sendMetadata(answer.headers);
      if (answer.error)
        callback({
          code: answer.error.code,
          details: answer.error.details,
          metadata: answer.error.trailers ?? new grpc.Metadata(),
        } as grpc.ServiceError);
      else callback(null, answer.response ?? Buffer.alloc(0));
    };
    if (answer.delayMs) {
      const timer = setTimeout(reply, answer.delayMs);
      call.on('cancelled', () => clearTimeout(timer));
    } else reply();
  };
  server.addService({Echo: raw('jsonfx.v1.JsonService/Echo')} as unknown as grpc.ServiceDefinition, {
    Echo: handle('jsonfx.v1.JsonService/Echo'),
  });
  server.addService({Process: raw('demo.v1.DemoService/Process')} as unknown as grpc.ServiceDefinition, {
    Process: handle('demo.v1.DemoService/Process'),
  });

  if (options.reflection !== 'none') {
    const definition = protoLoader.loadSync([JSON_PROTO, path.join(PACKAGE_ROOT, 'proto', 'demo', 'v1', 'demo.proto')], {
      keepCase: true,
      includeDirs: [path.dirname(JSON_PROTO)],
    });
    // Records the metadata of each reflection stream, then hands it to @grpc/reflection.
    const recording: Pick<grpc.Server, 'addService'> = {
      addService(service, implementation) {
        const inner = (implementation as Record<string, (stream: grpc.ServerDuplexStream<unknown, unknown>) => void>)[
          'ServerReflectionInfo'
        ]!;
        server.addService(service, {
          ServerReflectionInfo: (stream: grpc.ServerDuplexStream<unknown, unknown>) => {
            reflectionMetadata.push(Object.fromEntries(Object.entries(stream.metadata.getMap()).map(([k, v]) => [k, String(v)])));
            inner(stream);
          },
        });
      },
    };
    if (options.reflection === 'v1alpha') new ReflectionV1AlphaImplementation(definition).addToServer(recording);
    else new ReflectionService(definition).addToServer(recording);
  }

  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      '127.0.0.1:0',
      options.tls
        ? grpc.ServerCredentials.createSsl(
            options.tls.ca ?? null,
            [{private_key: options.tls.key, cert_chain: options.tls.cert}],
            options.tls.ca !== undefined,
          )
        : grpc.ServerCredentials.createInsecure(),
      (error, bound) => (error ? reject(error) : resolve(bound)),
    ),
  );
  t.after(
    () =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => server.forceShutdown(), 200);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
  );
  return {address: `127.0.0.1:${port}`, calls, reflectionMetadata};
}
