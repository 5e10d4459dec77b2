import {createMethodHandle, type MethodHandle} from '../schema/method-handle.js';
import {SchemaError} from '../schema/schema.js';
import {loadProtoFiles} from '../schema/source-proto.js';
import type {JsonOptions} from './response-json.js';

export type {MethodHandle} from '../schema/method-handle.js';
/** How a method streams: `unary`, `client-streaming`, `server-streaming` or `bidi` (see method-kind.ts). */
export type {MethodKind} from './method-kind.js';
/** Why a method could not be loaded; `key` is the job key to blame (`proto`, `protoset`, `method`, `target`). */
export {SchemaError as MethodLoadError} from '../schema/schema.js';

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
