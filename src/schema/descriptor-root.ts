import protobuf from 'protobufjs';
import descriptor from 'protobufjs/ext/descriptor/index.js';
import {protocJsonName} from '../codec/json-names.js';

/**
 * FileDescriptorProtos (from a protoset or server reflection) -> a protobufjs Root.
 *
 * protobufjs's own `Root.fromDescriptor` (ext/descriptor) loses what proto3 JSON needs: it keeps no
 * `json_name`, turns every `map<K, V>` into a repeated `KEntry` message (so a map would print as
 * `[{"key", "value"}]`), and reads `proto3_optional` under a name the decoder never sets. So the
 * descriptors are turned into protobufjs JSON here, field by field, and loaded with `Root#addJSON`.
 * The well-known types (google/protobuf/*.proto) come from protobufjs's bundled definitions, the
 * same ones a .proto source gets, so every source gives them the same shape.
 */

export type FileDescriptor = descriptor.IFileDescriptorProto;

/** Decodes one FileDescriptorSet (`protoc --descriptor_set_out`, `buf build -o`). */
export function decodeDescriptorSet(bytes: Uint8Array): FileDescriptor[] {
  return (descriptor.FileDescriptorSet.decode(bytes) as unknown as descriptor.IFileDescriptorSet).file ?? [];
}

/** Decodes one serialized FileDescriptorProto (as server reflection sends them). */
export function decodeFileDescriptor(bytes: Uint8Array): FileDescriptor {
  return descriptor.FileDescriptorProto.decode(bytes) as unknown as FileDescriptor;
}

/** Builds a resolved Root from files; a file given twice (by name) is taken once. Throws when a type is missing. */
export function rootFromDescriptors(files: readonly FileDescriptor[]): protobuf.Root {
  const root = new protobuf.Root();
  const seen = new Set<string>();
  for (const file of files) {
    const name = file.name ?? '';
    if (name && seen.has(name)) continue;
    seen.add(name);
    const bundled = name.startsWith('google/protobuf/') ? (protobuf.common.get(name) as protobuf.INamespace | null) : null;
    if (bundled) {
      if (bundled.nested) root.addJSON(bundled.nested);
    } else {
      root.addJSON(fileToJson(file));
    }
    if (name) root.files.push(name);
  }
  return root.resolveAll() as protobuf.Root;
}

type Json = Record<string, unknown>;

function fileToJson(file: FileDescriptor): Record<string, protobuf.AnyNestedObject> {
  const edition = file.syntax === 'proto3' ? 'proto3' : file.syntax === 'editions' ? '2023' : 'proto2';
  const nested: Json = {};
  const pkg = file.package ?? '';
  for (const type of file.messageType ?? []) nested[type.name!] = {...messageToJson(type, pkg ? `.${pkg}` : ''), edition};
  for (const type of file.enumType ?? []) nested[type.name!] = {...enumToJson(type), edition};
  for (const service of file.service ?? []) nested[service.name!] = {...serviceToJson(service), edition};
  if (!pkg) return nested as Record<string, protobuf.AnyNestedObject>;
  // "a.b.c" -> {a: {nested: {b: {nested: {c: {nested}}}}}}
  let wrapped: Json = {nested};
  for (const part of pkg.split('.').reverse()) wrapped = {nested: {[part]: wrapped}};
  return (wrapped['nested'] ?? {}) as Record<string, protobuf.AnyNestedObject>;
}

const TYPE_NAMES: Record<number, string> = {
  1: 'double',
  2: 'float',
  3: 'int64',
  4: 'uint64',
  5: 'int32',
  6: 'fixed64',
  7: 'fixed32',
  8: 'bool',
  9: 'string',
  12: 'bytes',
  13: 'uint32',
  15: 'sfixed32',
  16: 'sfixed64',
  17: 'sint32',
  18: 'sint64',
};

function own(object: object, key: string): boolean {
  return Object.hasOwn(object, key);
}

function messageToJson(type: descriptor.IDescriptorProto, scope: string): Json {
  const fullName = `${scope}.${type.name}`;
  const entries = new Map<string, descriptor.IDescriptorProto>();
  for (const inner of type.nestedType ?? []) if (inner.options?.mapEntry) entries.set(inner.name!, inner);
  const mapEntryOf = (typeName: string): descriptor.IDescriptorProto | undefined => {
    const last = typeName.slice(typeName.lastIndexOf('.') + 1);
    const entry = entries.get(last);
    // protoc writes ".pkg.Msg.FooEntry"; protobufjs's toDescriptor (grpc-js servers) a bare "Foo".
    return entry && (typeName === last || typeName === `${fullName}.${last}`) ? entry : undefined;
  };

  const oneofNames = (type.oneofDecl ?? []).map((o) => o.name!);
  const oneofs: Record<string, {oneof: string[]}> = {};
  const fields: Json = {};
  for (const field of type.field ?? []) {
    const entry = field.label === 3 && field.type === 11 && field.typeName ? mapEntryOf(field.typeName) : undefined;
    const json: Json = {id: field.number};
    if (entry) {
      const key = entry.field?.find((f) => f.number === 1);
      const value = entry.field?.find((f) => f.number === 2);
      json['keyType'] = TYPE_NAMES[key?.type ?? 9] ?? 'string';
      json['type'] = value ? fieldType(value) : 'string';
    } else {
      json['type'] = fieldType(field);
      if (field.label === 3) json['rule'] = 'repeated';
      else if (field.label === 2) json['rule'] = 'required';
    }
    const options: Json = {};
    if (field.jsonName && field.jsonName !== protocJsonName(field.name!)) options['json_name'] = field.jsonName;
    if (own(field, 'proto3Optional') && (field as {proto3Optional?: boolean}).proto3Optional) options['proto3_optional'] = true;
    if (field.options && own(field.options, 'packed')) options['packed'] = field.options.packed;
    if (field.options && (field.options as {deprecated?: boolean}).deprecated) options['deprecated'] = true;
    const fallback = defaultValue(field);
    if (fallback !== undefined) options['default'] = fallback;
    if (Object.keys(options).length > 0) json['options'] = options;
    fields[field.name!] = json;
    if (own(field, 'oneofIndex') && oneofNames[field.oneofIndex!] !== undefined) {
      (oneofs[oneofNames[field.oneofIndex!]!] ??= {oneof: []}).oneof.push(field.name!);
    }
  }
  const out: Json = {fields};
  if (Object.keys(oneofs).length > 0) out['oneofs'] = oneofs;
  const nested: Json = {};
  for (const inner of type.nestedType ?? []) if (!inner.options?.mapEntry) nested[inner.name!] = messageToJson(inner, fullName);
  for (const inner of type.enumType ?? []) nested[inner.name!] = enumToJson(inner);
  if (Object.keys(nested).length > 0) out['nested'] = nested;
  if (type.reservedName?.length || type.reservedRange?.length) {
    out['reserved'] = [...(type.reservedRange ?? []).map((r) => [r.start ?? 0, (r.end ?? 1) - 1]), ...(type.reservedName ?? [])];
  }
  return out;
}

function fieldType(field: descriptor.IFieldDescriptorProto): string {
  if (field.typeName) return field.typeName;
  const name = TYPE_NAMES[field.type ?? 0];
  if (!name) throw new Error(`field ${field.name} has a type this tool cannot read (descriptor type ${field.type})`);
  return name;
}

/** A proto2 `[default = ...]`, as protobufjs keeps it. */
function defaultValue(field: descriptor.IFieldDescriptorProto): unknown {
  const raw = field.defaultValue;
  if (raw === undefined || raw === null || raw === '') return undefined;
  if (field.type === 8) return raw === 'true';
  if (field.type === 9 || field.type === 12 || field.type === 14) return raw;
  const n = Number(raw);
  return Number.isNaN(n) && raw !== 'nan' ? raw : n;
}

function enumToJson(type: descriptor.IEnumDescriptorProto): Json {
  const values: Record<string, number> = {};
  for (const value of type.value ?? []) values[value.name!] = value.number ?? 0;
  const out: Json = {values};
  if (type.options?.allowAlias) out['options'] = {allow_alias: true};
  return out;
}

function serviceToJson(service: descriptor.IServiceDescriptorProto): Json {
  const methods: Json = {};
  for (const method of service.method ?? []) {
    methods[method.name!] = {
      requestType: method.inputType,
      responseType: method.outputType,
      ...(method.clientStreaming ? {requestStream: true} : {}),
      ...(method.serverStreaming ? {responseStream: true} : {}),
    };
  }
  return {methods};
}
