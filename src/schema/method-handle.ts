import protobuf from 'protobufjs';
import {didYouMean} from '../util/suggest.js';
import {createMessageEncoder, resolveFieldPath, type MessageEncoder} from '../codec/message.js';
import {methodKind, type MethodKind} from '../codec/method-kind.js';
import {createJsonDecoder, type JsonOptions} from '../codec/response-json.js';
import {SchemaError, type Schema} from './schema.js';
import {loadProtoFiles} from './source-proto.js';

/** A method, ready to call, whatever the schema came from: its path, its kind, a strict request encoder and a response decoder. */
export interface MethodHandle {
  /** `package.Service/Method`, as the user wrote it (normalised). */
  readonly name: string;
  /** Whether requests and responses are streams (which kinds a job may run: `checkMethodKind`). */
  readonly kind: MethodKind;
  /** The HTTP/2 path, `/package.Service/Method`. */
  readonly path: string;
  readonly requestType: string;
  readonly responseType: string;
  /** Checks a request (proto3 JSON mapping) and encodes it; throws `MessageError` naming the field. */
  readonly encodeRequest: MessageEncoder;
  /** Decodes a response into proto3 JSON as protoc prints it (see response-json.ts). */
  readonly decodeResponse: (bytes: Buffer) => unknown;
  /** The schema's types (for status details of types it defines). */
  readonly root: protobuf.Root;
  /** Where the schema came from, as `validate` says it. */
  readonly origin: string;
  /** A dotted request field path (`user_id`, `order.id`): per step the keys a record may use, or why it is no field. */
  readonly requestFieldPath?: (fieldPath: string) => (readonly string[])[] | string;
}

/** Splits `package.Service/Method` (or `package.Service.Method`) into service and method. */
export function splitMethod(method: string): [string, string] {
  const slash = method.lastIndexOf('/');
  if (slash > 0) return [method.slice(0, slash).replace(/^\//, ''), method.slice(slash + 1)];
  const dot = method.lastIndexOf('.');
  if (dot > 0) return [method.slice(0, dot), method.slice(dot + 1)];
  throw new SchemaError('method', `expected "package.Service/Method", got "${method}"`);
}

/** Finds one method in a schema (any kind); a `SchemaError` on `method` says what is there instead. */
export function createMethodHandle(schema: Schema, method: string, json: JsonOptions = {}): MethodHandle {
  const [serviceName, methodName] = splitMethod(method);
  let service: protobuf.ReflectionObject | null = null;
  try {
    service = schema.root.lookup(`.${serviceName}`);
  } catch {
    service = null;
  }
  if (!(service instanceof protobuf.Service)) {
    const known =
      schema.services.length > 0
        ? `; services in ${schema.origin}: ${schema.services.join(', ')}`
        : `; ${schema.origin} defines no service`;
    throw new SchemaError('method', `unknown service "${serviceName}"${didYouMean(serviceName, [...schema.services])}${known}`);
  }
  const methods = Object.keys(service.methods);
  const rpc = service.methods[methodName];
  if (!rpc) {
    throw new SchemaError(
      'method',
      `service "${serviceName}" has no method "${methodName}"${didYouMean(methodName, methods)}; methods: ${methods.join(', ')}`,
    );
  }
  rpc.resolve();
  const request = rpc.resolvedRequestType!;
  const response = rpc.resolvedResponseType!;
  const decode = createJsonDecoder(response, json);
  return {
    name: `${serviceName}/${methodName}`,
    path: `/${serviceName}/${methodName}`,
    kind: methodKind(Boolean(rpc.requestStream), Boolean(rpc.responseStream)),
    requestType: request.fullName.slice(1),
    responseType: response.fullName.slice(1),
    encodeRequest: createMessageEncoder(request),
    decodeResponse: decode,
    root: schema.root,
    origin: schema.origin,
    requestFieldPath: (fieldPath) => resolveFieldPath(request, fieldPath),
  };
}

/** Options for `loadMethod`. */
export interface LoadMethodOptions extends JsonOptions {
  /** The .proto file (or files). */
  readonly proto: string | readonly string[];
  /** Fully-qualified `package.Service/Method` (a `.` before the method is accepted too). */
  readonly method: string;
  /** Folders searched for imports, after each proto's own folder. @default [] */
  readonly importPaths?: readonly string[];
}

/** Loads .proto files and finds one method in them, any kind (the synchronous path for a proto source; see `checkMethodKind`). */
export function loadMethod(options: LoadMethodOptions): MethodHandle {
  const files = typeof options.proto === 'string' ? [options.proto] : options.proto;
  if (files.length === 0) throw new SchemaError('proto', 'expected at least one .proto file');
  return createMethodHandle(loadProtoFiles(files, options.importPaths ?? []), options.method, options);
}
