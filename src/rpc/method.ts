import {existsSync} from 'node:fs';
import path from 'node:path';
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';
import {didYouMean} from '../suggest.js';
import {createMessageEncoder, type MessageEncoder} from './message.js';
import {methodKind, type MethodKind} from './method-kind.js';
import {createResponseMapper} from './response-json.js';

/** Options for `loadMethod`. */
export interface LoadMethodOptions {
  /** The .proto file. */
  readonly proto: string;
  /** Fully-qualified `package.Service/Method` (a `.` before the method is accepted too). */
  readonly method: string;
  /** Folders searched for imports, after the proto's own folder. @default [] */
  readonly importPaths?: readonly string[];
}

/** How a method streams: `unary`, `client-streaming`, `server-streaming` or `bidi` (see method-kind.ts). */
export type {MethodKind} from './method-kind.js';

/** A method, ready to call: its path, its kind, a strict request encoder and a response decoder. */
export interface MethodHandle {
  /** `package.Service/Method`, as the user wrote it (normalised). */
  readonly name: string;
  /** Whether requests and responses are streams. */
  readonly kind: MethodKind;
  /** The HTTP/2 path, `/package.Service/Method`. */
  readonly path: string;
  readonly requestType: string;
  readonly responseType: string;
  /** Checks a request (proto3 JSON mapping) and encodes it; throws `MessageError` naming the field. */
  readonly encodeRequest: MessageEncoder;
  /**
   * Decodes a response into proto3 JSON: lowerCamelCase names, int64 as strings, enums by name,
   * bytes as base64, NaN and Infinity as strings, and the well-known types in their JSON forms
   * (Timestamp, Duration, wrappers, FieldMask, Struct, Value, ListValue, Any; see response-json.ts).
   */
  readonly decodeResponse: (bytes: Buffer) => unknown;
}

/** Why a method could not be loaded; `key` is the job key to blame (`proto` or `method`). */
export class MethodLoadError extends Error {
  readonly key: 'proto' | 'method';
  constructor(key: 'proto' | 'method', message: string) {
    super(message);
    this.key = key;
  }
}

/** Loads a proto with @grpc/proto-loader and finds one method in it (any kind: see `checkMethodKind`). */
export function loadMethod(options: LoadMethodOptions): MethodHandle {
  const protoFile = path.resolve(options.proto);
  if (!existsSync(protoFile)) throw new MethodLoadError('proto', `file not found: ${protoFile}`);
  const includeDirs = [path.dirname(protoFile), ...(options.importPaths ?? []).map((p) => path.resolve(p))];

  let definition: protoLoader.PackageDefinition;
  let root: protobuf.Root;
  try {
    // Responses come out in proto3 JSON form: lowerCamelCase names, int64 as strings, enums by name.
    const loaderOptions: protoLoader.Options = {
      keepCase: false,
      longs: String,
      enums: String,
      bytes: String,
      defaults: false,
      oneofs: false,
      json: true,
      includeDirs,
    };
    definition = protoLoader.loadSync(protoFile, loaderOptions);
    // The same files through protobufjs, for strict request checks (proto-loader's serializer
    // silently drops unknown fields and coerces wrong types).
    root = new protobuf.Root();
    root.resolvePath = (origin, target) => resolveImport(origin, target, includeDirs);
    root.loadSync(protoFile, {keepCase: true});
    root.resolveAll();
  } catch (error) {
    throw new MethodLoadError('proto', `does not parse: ${(error as Error).message}`);
  }

  const [serviceName, methodName] = splitMethod(options.method);
  const services = Object.entries(definition).filter(([, v]) => isService(v)).map(([k]) => k);
  const service = definition[serviceName];
  if (!service || !isService(service)) {
    const known = services.length > 0 ? `; services in ${path.basename(protoFile)}: ${services.join(', ')}` : '; the proto defines no service';
    throw new MethodLoadError('method', `unknown service "${serviceName}"${didYouMean(serviceName, services)}${known}`);
  }
  const methods = Object.keys(service);
  const method = (service as protoLoader.ServiceDefinition)[methodName];
  if (!method) {
    throw new MethodLoadError(
      'method',
      `service "${serviceName}" has no method "${methodName}"${didYouMean(methodName, methods)}; methods: ${methods.join(', ')}`,
    );
  }
  const rpc = (root.lookup(serviceName) as protobuf.Service).methods[methodName]!;
  rpc.resolve();
  const reqType = rpc.resolvedRequestType!;
  const resType = rpc.resolvedResponseType!;
  const deserialize = method.responseDeserialize as (bytes: Buffer) => unknown;
  const mapResponse = createResponseMapper(resType);
  return {
    name: `${serviceName}/${methodName}`,
    path: method.path,
    kind: methodKind(method.requestStream, method.responseStream),
    requestType: reqType.fullName.replace(/^\./, ''),
    responseType: resType.fullName.replace(/^\./, ''),
    encodeRequest: createMessageEncoder(reqType),
    decodeResponse: mapResponse ? (bytes) => mapResponse(deserialize(bytes)) : deserialize,
  };
}

function splitMethod(method: string): [string, string] {
  const slash = method.lastIndexOf('/');
  if (slash > 0) return [method.slice(0, slash).replace(/^\//, ''), method.slice(slash + 1)];
  const dot = method.lastIndexOf('.');
  if (dot > 0) return [method.slice(0, dot), method.slice(dot + 1)];
  throw new MethodLoadError('method', `expected "package.Service/Method", got "${method}"`);
}

function isService(value: unknown): boolean {
  if (!value || typeof value !== 'object' || 'format' in value) return false;
  return Object.values(value).some((m) => m && typeof m === 'object' && 'path' in m && 'requestStream' in m);
}

function resolveImport(origin: string, target: string, includeDirs: readonly string[]): string {
  if (path.isAbsolute(target)) return target;
  for (const dir of includeDirs) {
    const candidate = path.join(dir, target);
    if (existsSync(candidate)) return candidate;
  }
  // Well-known types (google/protobuf/*.proto) are built into protobufjs.
  return origin ? path.resolve(path.dirname(origin), target) : target;
}
