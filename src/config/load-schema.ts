import {fixedMetadata} from './metadata-template.js';
import type {JobSpec} from './spec.js';
import {splitMethod} from '../schema/method-handle.js';
import type {TlsSpec} from '../rpc/credentials.js';
import type {Schema} from '../schema/schema.js';
import {loadProtoFiles} from '../schema/source-proto.js';
import {loadProtosets} from '../schema/source-protoset.js';
import {loadByReflection} from '../rpc/reflection-client.js';

/** The longest the reflection exchange may take: the job's `deadline`, up to this. */
const REFLECTION_DEADLINE_MS = 10_000;

/** Where a job's schema comes from: .proto files, descriptor sets, or the server itself. */
export type SchemaSource =
  | {readonly kind: 'proto'; readonly files: readonly string[]; readonly importPaths: readonly string[]}
  | {readonly kind: 'protoset'; readonly files: readonly string[]}
  | {
      readonly kind: 'reflection';
      readonly target: string;
      readonly tls?: TlsSpec | undefined;
      readonly channelOptions?: Readonly<Record<string, unknown>>;
      readonly metadata: Readonly<Record<string, string>>;
      readonly deadlineMs: number;
    };

/** A job's schema source: its `proto` files, else its `protoset` files, else the server's reflection. */
export function schemaSourceOf(spec: JobSpec): SchemaSource {
  if (spec.proto.length > 0) return {kind: 'proto', files: spec.proto, importPaths: spec.importPaths};
  if (spec.protoset.length > 0) return {kind: 'protoset', files: spec.protoset};
  return {
    kind: 'reflection',
    target: spec.target,
    tls: spec.tls,
    channelOptions: spec.channelOptions,
    metadata: spec.reflectionMetadata ?? fixedMetadata(spec),
    deadlineMs: spec.deadlineMs > 0 ? Math.min(spec.deadlineMs, REFLECTION_DEADLINE_MS) : REFLECTION_DEADLINE_MS,
  };
}

/** Loads a schema; for reflection, the files of `service` (and its imports). Throws `SchemaError`. */
export async function loadSchema(source: SchemaSource, service: string): Promise<Schema> {
  switch (source.kind) {
    case 'proto':
      return loadProtoFiles(source.files, source.importPaths);
    case 'protoset':
      return loadProtosets(source.files);
    default:
      return loadByReflection(source, service);
  }
}

/** The schema of a job's method. */
export function loadJobSchema(spec: JobSpec): Promise<Schema> {
  return loadSchema(schemaSourceOf(spec), splitMethod(spec.method)[0]);
}
