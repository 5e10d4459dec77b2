import protobuf from 'protobufjs';
import type {JsonOptions} from '../codec/response-json.js';
import {createMethodHandle, type MethodHandle} from '../schema/method-handle.js';
import {servicesOf} from '../schema/schema.js';

/**
 * A method as data, for a worker that has neither the .proto files nor the protoset, and does not
 * ask the server by reflection: the schema the coordinator loaded, as protobufjs JSON
 * (`Root.toJSON()`), rebuilt with `Root.fromJSON` (as worker threads do). This is the one place
 * of the scale-out that turns a method into data and back.
 */
export interface MethodJson {
  /** `package.Service/Method`. */
  readonly method: string;
  /** The schema's types: `Root#toJSON()`. */
  readonly root: protobuf.INamespace;
  /** Where the coordinator got the schema, for messages. */
  readonly origin: string;
  /** How responses are printed (the job's `jsonNames`, `emitDefaults`). */
  readonly json: JsonOptions;
}

export function methodToJson(method: MethodHandle, name: string, json: JsonOptions): MethodJson {
  return {method: name, root: method.root.toJSON(), origin: method.origin, json};
}

/** The method handle a worker calls with: it decodes responses as the coordinator's would. */
export function methodFromJson(data: MethodJson): MethodHandle {
  const root = protobuf.Root.fromJSON(data.root);
  return createMethodHandle({root, origin: data.origin, services: servicesOf(root)}, data.method, data.json);
}
