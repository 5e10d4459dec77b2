import {existsSync} from 'node:fs';
import path from 'node:path';
import protobuf from 'protobufjs';
import type {MethodHandle} from '../rpc/method.js';
import {createResponseMapper} from '../rpc/response-json.js';

/**
 * A unary method as data, for a worker that has no .proto file: its path and names, and the
 * protobufjs JSON (`Root.toJSON()`) of the types its response needs, rebuilt with `Root.fromJSON`.
 * Requests are encoded by the coordinator, so a worker only decodes responses.
 *
 * This is the one place that turns a method into data and back; the sources of a method (proto
 * files, descriptor sets, reflection) stay in src/rpc and src/schema.
 */
export interface MethodJson {
  readonly name: string;
  readonly path: string;
  readonly requestType: string;
  readonly responseType: string;
  /** `protobuf.Root#toJSON()` of the loaded files, field names in lowerCamelCase (as proto-loader reads them). */
  readonly root: protobuf.INamespace;
}

/** What proto-loader passes to `toObject` (see `loadMethod`): the response is decoded the same way. */
const TO_OBJECT: protobuf.IConversionOptions = {longs: String, enums: String, bytes: String, defaults: false, oneofs: false, json: true};

/** The method of a loaded job as data: its types read again from the proto (lowerCamelCase, as proto-loader has them). */
export function methodToJson(method: MethodHandle, proto: string, importPaths: readonly string[] = []): MethodJson {
  const protoFile = path.resolve(proto);
  const includeDirs = [path.dirname(protoFile), ...importPaths.map((p) => path.resolve(p))];
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) => {
    if (path.isAbsolute(target)) return target;
    for (const dir of includeDirs) {
      const candidate = path.join(dir, target);
      if (existsSync(candidate)) return candidate;
    }
    return origin ? path.resolve(path.dirname(origin), target) : target;
  };
  root.loadSync(protoFile, {keepCase: false});
  root.resolveAll();
  return {name: method.name, path: method.path, requestType: method.requestType, responseType: method.responseType, root: root.toJSON().nested ? {nested: root.toJSON().nested} : {}};
}

/** A method handle rebuilt from data: it decodes responses as `loadMethod`'s does; it encodes no request. */
export function methodFromJson(json: MethodJson): MethodHandle {
  const root = protobuf.Root.fromJSON(json.root);
  root.resolveAll();
  const type = root.lookupType(json.responseType);
  const mapResponse = createResponseMapper(type);
  const decode = (bytes: Buffer) => type.toObject(type.decode(bytes), TO_OBJECT);
  return {
    name: json.name,
    path: json.path,
    kind: 'unary',
    requestType: json.requestType,
    responseType: json.responseType,
    encodeRequest: () => {
      throw new Error(`${json.name}: requests are encoded by the coordinator, not on a worker`);
    },
    decodeResponse: mapResponse ? (bytes) => mapResponse(decode(bytes)) : decode,
  };
}
