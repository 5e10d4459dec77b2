import protobuf from 'protobufjs';
import {didYouMean} from '../suggest.js';

/**
 * Strict proto3-JSON checking and encoding of request messages.
 *
 * proto-loader's serializer (protobufjs `fromObject`) drops unknown fields and coerces wrong types
 * without a word, so `{"cont": 3}` would be sent as an empty message. Here every field is checked
 * against the message type first, and the first problem is thrown as a `MessageError` whose `path`
 * names the field (`nested.level`, `tags[2]`).
 */

export type MessageEncoder = (value: unknown) => Buffer;

export class MessageError extends Error {
  /** Field path inside the message, or '' for the message itself. */
  readonly path: string;
  constructor(path: string, message: string) {
    super(path ? `${path}: ${message}` : message);
    this.path = path;
  }
}

const INT32 = [-(2 ** 31), 2 ** 31 - 1] as const;
const UINT32 = [0, 2 ** 32 - 1] as const;
const INT64 = [-(2n ** 63n), 2n ** 63n - 1n] as const;
const UINT64 = [0n, 2n ** 64n - 1n] as const;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2,3})?$/;
const BASE64URL = /^[A-Za-z0-9_-]*={0,2}$/;
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
const DURATION = /^(-)?(\d+)(?:\.(\d{1,9}))?s$/;

const WRAPPERS: Record<string, string> = {
  '.google.protobuf.DoubleValue': 'double',
  '.google.protobuf.FloatValue': 'float',
  '.google.protobuf.Int64Value': 'int64',
  '.google.protobuf.UInt64Value': 'uint64',
  '.google.protobuf.Int32Value': 'int32',
  '.google.protobuf.UInt32Value': 'uint32',
  '.google.protobuf.BoolValue': 'bool',
  '.google.protobuf.StringValue': 'string',
  '.google.protobuf.BytesValue': 'bytes',
};

/** Builds an encoder for one message type: check, convert (proto3 JSON -> protobufjs), encode. */
export function createMessageEncoder(type: protobuf.Type): MessageEncoder {
  return (value: unknown) => {
    const plain = checkMessage(type, value, '');
    return Buffer.from(type.encode(type.fromObject(plain)).finish());
  };
}

/** Checks `value` against `type` and returns an object `Type.fromObject` converts without loss. */
export function checkMessage(type: protobuf.Type, value: unknown, path: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new MessageError(path, `expected a JSON object for ${type.name}, got ${describe(value)}`);
  }
  const out: Record<string, unknown> = {};
  const seenOneofs = new Map<string, string>();
  for (const [key, raw] of Object.entries(value)) {
    const field = fieldByJsonKey(type, key);
    const fieldPath = path ? `${path}.${key}` : key;
    if (!field) {
      const names = type.fieldsArray.map((f) => jsonName(f));
      throw new MessageError(fieldPath, `unknown field of ${type.name}${didYouMean(key, [...names, ...type.fieldsArray.map((f) => f.name)])}; fields: ${names.join(', ')}`);
    }
    if (raw === null) continue; // proto3 JSON: null means the default value
    if (field.partOf) {
      const other = seenOneofs.get(field.partOf.name);
      if (other) throw new MessageError(fieldPath, `oneof "${field.partOf.name}" already has field "${other}"; set only one`);
      seenOneofs.set(field.partOf.name, key);
    }
    out[field.name] = checkField(field, raw, fieldPath);
  }
  for (const field of type.fieldsArray) {
    if (field.required && out[field.name] === undefined) {
      throw new MessageError(path ? `${path}.${jsonName(field)}` : jsonName(field), `missing required field of ${type.name}`);
    }
  }
  return out;
}

function checkField(field: protobuf.Field, raw: unknown, path: string): unknown {
  field.resolve();
  if (field instanceof protobuf.MapField) {
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
      throw new MessageError(path, `expected a JSON object (map<${field.keyType}, ${field.type}>), got ${describe(raw)}`);
    }
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(raw)) {
      checkMapKey(field.keyType, k, `${path}["${k}"]`);
      out[k] = checkSingle(field, v, `${path}["${k}"]`);
    }
    return out;
  }
  if (field.repeated) {
    if (!Array.isArray(raw)) throw new MessageError(path, `expected a JSON array (repeated ${field.type}), got ${describe(raw)}`);
    return raw.map((v, i) => checkSingle(field, v, `${path}[${i}]`));
  }
  return checkSingle(field, raw, path);
}

function checkSingle(field: protobuf.Field, raw: unknown, path: string): unknown {
  const resolved = field.resolvedType;
  if (resolved instanceof protobuf.Enum) return checkEnum(resolved, raw, path);
  if (resolved instanceof protobuf.Type) return checkNested(resolved, raw, path);
  return checkScalar(field.type, raw, path);
}

function checkNested(type: protobuf.Type, raw: unknown, path: string): unknown {
  const full = type.fullName;
  const wrapped = WRAPPERS[full];
  if (wrapped) return {value: checkScalar(wrapped, raw, path)};
  if (full === '.google.protobuf.Timestamp') return checkTimestamp(raw, path);
  if (full === '.google.protobuf.Duration') return checkDurationValue(raw, path);
  if (full === '.google.protobuf.Struct' || full === '.google.protobuf.Value' || full === '.google.protobuf.ListValue') {
    throw new MessageError(path, `${full.slice(1)} fields are not supported yet; use a typed message`);
  }
  return checkMessage(type, raw, path);
}

function checkEnum(type: protobuf.Enum, raw: unknown, path: string): unknown {
  if (typeof raw === 'string') {
    if (raw in type.values) return raw;
    const names = Object.keys(type.values);
    throw new MessageError(path, `"${raw}" is not a value of enum ${type.name}${didYouMean(raw, names)}; values: ${names.join(', ')}`);
  }
  if (typeof raw === 'number' && Number.isInteger(raw) && raw >= INT32[0] && raw <= INT32[1]) return raw;
  throw new MessageError(path, `expected an enum ${type.name} name or int32 number, got ${describe(raw)}`);
}

function checkScalar(kind: string, raw: unknown, path: string): unknown {
  switch (kind) {
    case 'string':
      if (typeof raw !== 'string') throw new MessageError(path, `expected a string, got ${describe(raw)}`);
      return raw;
    case 'bool':
      if (typeof raw !== 'boolean') throw new MessageError(path, `expected true or false, got ${describe(raw)}`);
      return raw;
    case 'double':
    case 'float':
      if (typeof raw === 'number') return raw;
      if (raw === 'NaN' || raw === 'Infinity' || raw === '-Infinity') return Number(raw);
      if (typeof raw === 'string' && raw.trim() !== '' && Number.isFinite(Number(raw))) return Number(raw);
      throw new MessageError(path, `expected a number, got ${describe(raw)}`);
    case 'int32':
    case 'sint32':
    case 'sfixed32':
      return checkInt(raw, path, kind, INT32);
    case 'uint32':
    case 'fixed32':
      return checkInt(raw, path, kind, UINT32);
    case 'int64':
    case 'sint64':
    case 'sfixed64':
      return checkLong(raw, path, kind, INT64);
    case 'uint64':
    case 'fixed64':
      return checkLong(raw, path, kind, UINT64);
    case 'bytes':
      if (typeof raw !== 'string') throw new MessageError(path, `expected base64 bytes as a string, got ${describe(raw)}`);
      if (BASE64.test(raw)) return raw;
      if (BASE64URL.test(raw)) return Buffer.from(raw, 'base64url');
      throw new MessageError(path, `expected base64 bytes, got ${describe(raw)}: not valid base64`);
    default:
      throw new MessageError(path, `unsupported field type ${kind}`);
  }
}

function checkInt(raw: unknown, path: string, kind: string, [min, max]: readonly [number, number]): number {
  const n = typeof raw === 'string' && /^-?\d+$/.test(raw.trim()) ? Number(raw) : raw;
  if (typeof n !== 'number' || !Number.isInteger(n)) {
    throw new MessageError(path, `expected an integer (${kind}), got ${describe(raw)}`);
  }
  if (n < min || n > max) throw new MessageError(path, `${n} is out of range for ${kind} (${min} to ${max})`);
  return n;
}

function checkLong(raw: unknown, path: string, kind: string, [min, max]: readonly [bigint, bigint]): string {
  let n: bigint;
  if (typeof raw === 'number' && Number.isInteger(raw)) n = BigInt(raw);
  else if (typeof raw === 'string' && /^-?\d+$/.test(raw.trim())) n = BigInt(raw.trim());
  else throw new MessageError(path, `expected an integer (${kind}) as a number or a decimal string, got ${describe(raw)}`);
  if (n < min || n > max) throw new MessageError(path, `${n} is out of range for ${kind}`);
  return n.toString();
}

function checkMapKey(keyType: string, key: string, path: string): void {
  if (keyType === 'string') return;
  if (keyType === 'bool') {
    if (key !== 'true' && key !== 'false') throw new MessageError(path, `map key must be "true" or "false"`);
    return;
  }
  if (!/^-?\d+$/.test(key)) throw new MessageError(path, `map key must be an integer (${keyType})`);
}

function checkTimestamp(raw: unknown, path: string): {seconds: string; nanos: number} {
  const match = typeof raw === 'string' ? RFC3339.exec(raw) : null;
  const ms = match ? Date.parse(raw as string) : NaN;
  if (!match || Number.isNaN(ms)) {
    throw new MessageError(path, `expected an RFC 3339 timestamp like "2024-01-31T12:00:00Z", got ${describe(raw)}`);
  }
  const fraction = (match[7] ?? '.').slice(1).padEnd(9, '0');
  const seconds = Math.floor(ms / 1000);
  return {seconds: String(seconds), nanos: Number(fraction)};
}

function checkDurationValue(raw: unknown, path: string): {seconds: string; nanos: number} {
  const match = typeof raw === 'string' ? DURATION.exec(raw) : null;
  if (!match) throw new MessageError(path, `expected a duration like "1.5s", got ${describe(raw)}`);
  const sign = match[1] ? -1 : 1;
  const nanos = Number((match[3] ?? '').padEnd(9, '0') || '0');
  return {seconds: (match[1] ?? '') + match[2], nanos: sign * nanos};
}

const jsonNames = new WeakMap<protobuf.Type, Map<string, protobuf.Field>>();

function fieldByJsonKey(type: protobuf.Type, key: string): protobuf.Field | undefined {
  let byKey = jsonNames.get(type);
  if (!byKey) {
    byKey = new Map();
    for (const field of type.fieldsArray) {
      byKey.set(field.name, field);
      byKey.set(jsonName(field), field);
    }
    jsonNames.set(type, byKey);
  }
  return byKey.get(key);
}

function jsonName(field: protobuf.Field): string {
  const explicit = field.options?.['json_name'];
  if (typeof explicit === 'string') return explicit;
  return field.name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  const text = JSON.stringify(value);
  return `${text.length > 40 ? `${text.slice(0, 40)}…` : text} (${typeof value})`;
}
