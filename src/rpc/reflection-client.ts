import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import {ChannelPool} from './channel.js';
import {buildMetadata} from './metadata.js';
import type {TlsSpec} from './credentials.js';
import {didYouMean} from '../util/suggest.js';
import {decodeFileDescriptor, rootFromDescriptors, type FileDescriptor} from '../schema/descriptor-root.js';
import {SchemaError, type Schema} from '../schema/schema.js';

/**
 * A small client of gRPC server reflection (grpc/grpc doc/server-reflection.md) over one
 * `ServerReflectionInfo` stream: v1 first, v1alpha when the server only has that. It asks for the
 * file that defines a symbol, then for each of its imports by name until it has them all, and
 * builds the schema from those descriptors (descriptor-root.ts). The reflection calls carry the
 * job's TLS, channel options and metadata (or `reflectionMetadata`).
 */

export interface ReflectionOptions {
  readonly target: string;
  readonly tls?: TlsSpec | undefined;
  readonly channelOptions?: Readonly<Record<string, unknown>> | undefined;
  /** Sent with the reflection stream. @default {} */
  readonly metadata?: Readonly<Record<string, string>>;
  /** For the whole exchange. @default 10_000 */
  readonly deadlineMs?: number;
}

export type ReflectionVersion = 'v1' | 'v1alpha';

const VERSIONS: readonly ReflectionVersion[] = ['v1', 'v1alpha'];
const DEFAULT_DEADLINE_MS = 10_000;
/** The server's status for a symbol or file it does not know. */
const NOT_FOUND = 5;

const MESSAGES = protobuf.Root.fromJSON({
  nested: {
    ServerReflectionRequest: {
      oneofs: {message_request: {oneof: ['file_by_filename', 'file_containing_symbol', 'list_services']}},
      fields: {
        host: {type: 'string', id: 1},
        file_by_filename: {type: 'string', id: 3},
        file_containing_symbol: {type: 'string', id: 4},
        list_services: {type: 'string', id: 7},
      },
    },
    ServerReflectionResponse: {
      fields: {
        file_descriptor_response: {type: 'FileDescriptorResponse', id: 4},
        list_services_response: {type: 'ListServiceResponse', id: 6},
        error_response: {type: 'ErrorResponse', id: 7},
      },
    },
    FileDescriptorResponse: {fields: {file_descriptor_proto: {rule: 'repeated', type: 'bytes', id: 1}}},
    ListServiceResponse: {fields: {service: {rule: 'repeated', type: 'ServiceResponse', id: 1}}},
    ServiceResponse: {fields: {name: {type: 'string', id: 1}}},
    ErrorResponse: {fields: {error_code: {type: 'int32', id: 1}, error_message: {type: 'string', id: 2}}},
  },
});
const Request = MESSAGES.lookupType('ServerReflectionRequest');
const Response = MESSAGES.lookupType('ServerReflectionResponse');

interface ReflectionResponse {
  file_descriptor_response?: {file_descriptor_proto: Uint8Array[]};
  list_services_response?: {service: {name: string}[]};
  error_response?: {error_code: number; error_message: string};
}

/** One reflection stream; requests are answered in order. */
class ReflectionStream {
  readonly #call: grpc.ClientDuplexStream<Record<string, unknown>, ReflectionResponse>;
  readonly #waiting: {resolve: (r: ReflectionResponse) => void; reject: (e: unknown) => void}[] = [];
  #failure: unknown;

  constructor(client: grpc.Client, version: ReflectionVersion, metadata: grpc.Metadata, deadline: number) {
    this.#call = client.makeBidiStreamRequest(
      `/grpc.reflection.${version}.ServerReflection/ServerReflectionInfo`,
      (value: Record<string, unknown>) => Buffer.from(Request.encode(Request.fromObject(value)).finish()),
      (bytes: Buffer) => Response.decode(bytes) as unknown as ReflectionResponse,
      metadata,
      {deadline},
    );
    this.#call.on('data', (response: ReflectionResponse) => this.#waiting.shift()?.resolve(response));
    this.#call.on('error', (error) => this.#fail(error));
    this.#call.on('end', () =>
      this.#fail(Object.assign(new Error('the server closed the reflection stream'), {code: grpc.status.UNKNOWN})),
    );
  }

  #fail(error: unknown): void {
    this.#failure ??= error;
    for (const waiter of this.#waiting.splice(0)) waiter.reject(this.#failure);
  }

  ask(request: Record<string, unknown>): Promise<ReflectionResponse> {
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      this.#waiting.push({resolve, reject});
      this.#call.write(request);
    });
  }

  close(): void {
    this.#call.end();
    this.#call.cancel();
  }
}

/** A reflection session: a channel and a stream on the first version the server answers. */
export class ReflectionClient {
  readonly #options: ReflectionOptions;
  readonly #pool: ChannelPool;
  readonly #deadline: number;
  #stream: ReflectionStream | undefined;
  #version: ReflectionVersion | undefined;

  constructor(options: ReflectionOptions) {
    this.#options = options;
    this.#pool = new ChannelPool({
      target: options.target,
      ...(options.tls ? {tls: options.tls} : {}),
      ...(options.channelOptions ? {channelOptions: options.channelOptions} : {}),
    });
    this.#deadline = Date.now() + (options.deadlineMs || DEFAULT_DEADLINE_MS);
  }

  get version(): ReflectionVersion | undefined {
    return this.#version;
  }

  /** Sends one request; on the first, falls back from v1 to v1alpha when v1 is UNIMPLEMENTED. */
  async #ask(request: Record<string, unknown>): Promise<ReflectionResponse> {
    if (this.#stream) return this.#stream.ask(request).catch((error: unknown) => this.#fail(error));
    let last: unknown;
    for (const version of VERSIONS) {
      const stream = new ReflectionStream(this.#pool.pick(), version, buildMetadata(this.#options.metadata ?? {}), this.#deadline);
      try {
        const response = await stream.ask(request);
        this.#stream = stream;
        this.#version = version;
        return response;
      } catch (error) {
        stream.close();
        last = error;
        if ((error as grpc.ServiceError).code !== grpc.status.UNIMPLEMENTED) break;
      }
    }
    return this.#fail(last);
  }

  #fail(error: unknown): never {
    const code = (error as grpc.ServiceError).code;
    const where = `the server at ${this.#options.target}`;
    if (code === grpc.status.UNIMPLEMENTED) {
      throw new SchemaError(
        'proto',
        `no proto or protoset is given, and ${where} does not offer server reflection (v1 or v1alpha: UNIMPLEMENTED); give proto: (with importPaths) or protoset:`,
      );
    }
    const name = typeof code === 'number' ? `${code} ${grpc.status[code]}` : 'error';
    throw new SchemaError(
      'target',
      `server reflection at ${this.#options.target} failed: ${name}: ${(error as grpc.ServiceError).details ?? (error as Error).message} (give proto: or protoset: to work without it)`,
      {cause: error},
    );
  }

  /** The services the server lists, sorted. */
  async listServices(): Promise<string[]> {
    const response = await this.#ask({list_services: ''});
    this.#check(response, 'list services');
    return (response.list_services_response?.service ?? []).map((s) => s.name).sort();
  }

  /**
   * The files that define `symbol` (a service, method, message or enum, fully-qualified) and all
   * they import. Undefined when the server does not know the symbol.
   */
  async filesFor(symbol: string): Promise<FileDescriptor[] | undefined> {
    const first = await this.#ask({file_containing_symbol: symbol});
    if (first.error_response?.error_code === NOT_FOUND) return undefined;
    this.#check(first, `find ${symbol}`);
    const files = new Map<string, FileDescriptor>();
    const wanted: string[] = [];
    const take = (response: ReflectionResponse) => {
      for (const bytes of response.file_descriptor_response?.file_descriptor_proto ?? []) {
        const file = decodeFileDescriptor(bytes);
        if (files.has(file.name ?? '')) continue;
        files.set(file.name ?? '', file);
        for (const dependency of file.dependency ?? []) if (!files.has(dependency)) wanted.push(dependency);
      }
    };
    take(first);
    while (wanted.length > 0) {
      const name = wanted.shift()!;
      if (files.has(name)) continue;
      const response = await this.#ask({file_by_filename: name});
      if (response.error_response) {
        // The well-known types are built in; any other missing import is the server's fault.
        if (name.startsWith('google/protobuf/')) {
          files.set(name, {name});
          continue;
        }
        this.#check(response, `get ${name}`);
      }
      take(response);
    }
    return [...files.values()];
  }

  #check(response: ReflectionResponse, what: string): void {
    const error = response.error_response;
    if (error)
      throw new SchemaError(
        'target',
        `server reflection at ${this.#options.target} could not ${what}: ${error.error_code} ${grpc.status[error.error_code] ?? ''}: ${error.error_message}`,
      );
  }

  close(): void {
    this.#stream?.close();
    this.#pool.close();
  }
}

/**
 * The schema of `service` (fully-qualified) from server reflection. An unknown service is a
 * `SchemaError` on `method` that names the services the server has.
 */
export async function loadByReflection(options: ReflectionOptions, service: string): Promise<Schema> {
  const client = new ReflectionClient(options);
  try {
    const files = await client.filesFor(service);
    if (!files) {
      const services = await client.listServices();
      throw new SchemaError(
        'method',
        `unknown service "${service}"${didYouMean(service, services)}; services of ${options.target} (server reflection): ${services.join(', ') || 'none'}`,
      );
    }
    let root: protobuf.Root;
    try {
      root = rootFromDescriptors(files);
    } catch (error) {
      throw new SchemaError(
        'target',
        `the descriptors sent by server reflection at ${options.target} do not load: ${(error as Error).message}`,
        {cause: error},
      );
    }
    const services = await client.listServices().catch(() => [service]);
    return {root, origin: `server reflection (${client.version}) at ${options.target}`, services};
  } finally {
    client.close();
  }
}
