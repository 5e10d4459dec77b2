import protobuf from 'protobufjs';
import {didYouMean} from '../util/suggest.js';
import {jsonName} from './json-names.js';

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
/** Largest finite float32; beyond it a float field would silently become Infinity. */
const FLOAT_MAX = 3.4028234663852886e38;
/** A UTF-16 surrogate without its pair: not encodable as UTF-8, which proto strings must be. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
const DURATION = /^(-)?(\d+)(?:\.(\d{1,9}))?s$/;

/** The wrapper types, by full name, and the scalar type each wraps. */
export const WRAPPERS: Readonly<Record<string, string>> = {
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
  // `latencyMs` and `latency_ms` name one field: both in one object is a mistake, not "last wins".
  const seenFields = new Map<protobuf.Field, string>();
  for (const [key, raw] of Object.entries(value)) {
    const field = fieldByJsonKey(type, key);
    const fieldPath = path ? `${path}.${key}` : key;
    if (!field) {
      const names = type.fieldsArray.map((f) => jsonName(f));
      throw new MessageError(
        fieldPath,
        `unknown field of ${type.name}${didYouMean(key, [...names, ...type.fieldsArray.map((f) => f.name)])}; fields: ${names.join(', ')}`,
      );
    }
    const twice = seenFields.get(field);
    if (twice !== undefined) throw new MessageError(fieldPath, `field ${field.name} is already set as "${twice}"; set it once`);
    seenFields.set(field, key);
    if (raw === null && !takesNull(field)) continue; // proto3 JSON: null means the default value (but for a Value)
    if (field.partOf) {
      const other = seenOneofs.get(field.partOf.name);
      if (other) throw new MessageError(fieldPath, `oneof "${field.partOf.name}" already has field "${other}"; set only one`);
      seenOneofs.set(field.partOf.name, key);
    }
    out[field.name] = checkField(field, raw, fieldPath);
  }
  for (const field of type.fieldsArray) {
    if (field.required && out[field.name] === undefined) {
      throw new MessageError(
        path ? `${path}.${jsonName(field)}` : jsonName(field),
        `missing required field of ${type.name} (expected ${field.repeated ? 'a list of ' : ''}${field.type})`,
      );
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
      // protobufjs encodes a bool key with `writer.bool(key)`, and the string "false" is truthy:
      // the empty string is the one key it writes as false.
      out[field.keyType === 'bool' && k === 'false' ? '' : k] = checkSingle(field, v, `${path}["${k}"]`);
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
  // The `{seconds, nanos}` form is what grpc-batch prints for a Timestamp outside years 1-9999.
  if (full === '.google.protobuf.Timestamp') return isObject(raw) ? checkMessage(type, raw, path) : checkTimestamp(raw, path);
  if (full === '.google.protobuf.Duration') return isObject(raw) ? checkMessage(type, raw, path) : checkDurationValue(raw, path);
  if (full === '.google.protobuf.Struct') return checkStruct(raw, path);
  if (full === '.google.protobuf.Value') return checkValue(raw, path);
  if (full === '.google.protobuf.ListValue') return checkList(raw, path);
  if (full === '.google.protobuf.FieldMask' && typeof raw === 'string') return checkFieldMask(raw, path);
  if (full === '.google.protobuf.Any') return checkAny(type.root, raw, path);
  return checkMessage(type, raw, path);
}

/** Whether a JSON null in this field is a value (`Value`'s NULL_VALUE) rather than "the default". */
function takesNull(field: protobuf.Field): boolean {
  field.resolve();
  return !field.repeated && !(field instanceof protobuf.MapField) && field.resolvedType?.fullName === '.google.protobuf.Value';
}

function checkStruct(raw: unknown, path: string): {fields: Record<string, unknown>} {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw new MessageError(path, `expected a JSON object (google.protobuf.Struct), got ${describe(raw)}`);
  const fields: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw)) fields[key] = checkValue(value, `${path}.${key}`);
  return {fields};
}

function checkList(raw: unknown, path: string): {values: unknown[]} {
  if (!Array.isArray(raw)) throw new MessageError(path, `expected a JSON array (google.protobuf.ListValue), got ${describe(raw)}`);
  return {values: raw.map((value, i) => checkValue(value, `${path}[${i}]`))};
}

/** Any JSON value, as a `google.protobuf.Value`. */
function checkValue(raw: unknown, path: string): Record<string, unknown> {
  if (raw === null) return {nullValue: 'NULL_VALUE'};
  if (typeof raw === 'number') return {numberValue: checkScalar('double', raw, path)};
  if (typeof raw === 'string') return {stringValue: checkScalar('string', raw, path)};
  if (typeof raw === 'boolean') return {boolValue: raw};
  if (Array.isArray(raw)) return {listValue: checkList(raw, path)};
  return {structValue: checkStruct(raw, path)};
}

/** `"user.displayName,createdAt"` -> paths `user.display_name`, `created_at`. */
function checkFieldMask(raw: string, path: string): {paths: string[]} {
  const paths = raw === '' ? [] : raw.split(',');
  for (const fieldPath of paths) {
    if (!/^[a-z][a-zA-Z0-9]*(?:\.[a-z][a-zA-Z0-9]*)*$/.test(fieldPath)) {
      throw new MessageError(
        path,
        `expected a field mask of lowerCamelCase field paths separated by commas, like "user.displayName,createdAt", got ${describe(raw)}`,
      );
    }
  }
  return {paths: paths.map((fieldPath) => fieldPath.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`))};
}

/**
 * `{"@type": "type.googleapis.com/pkg.Msg", ...fields}` (or `"value"` for a well-known type with a
 * JSON form of its own): the type must be in the proto's imports; its fields are checked like any
 * message's and packed.
 */
function checkAny(root: protobuf.Root, raw: unknown, path: string): {type_url: string; value: Uint8Array} {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw) || typeof (raw as Record<string, unknown>)['@type'] !== 'string') {
    throw new MessageError(
      path,
      `expected a JSON object with an "@type" (google.protobuf.Any), like {"@type": "type.googleapis.com/pkg.v1.Msg", ...its fields}, got ${describe(raw)}`,
    );
  }
  const {'@type': typeUrl, ...fields} = raw as Record<string, unknown> & {'@type': string};
  const name = typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
  const inner = lookupQuiet(root, name);
  if (!(inner instanceof protobuf.Type)) {
    // `{"@type", "value": <base64>}` is how a response prints an Any of a type the schema lacks: sent back packed as it was.
    const packed = fields['value'];
    if (Object.keys(fields).length === 1 && typeof packed === 'string' && base64Alphabet(packed))
      return {type_url: typeUrl, value: Buffer.from(packed, 'base64')};
    throw new MessageError(`${path}.@type`, `unknown message type "${name}"; the proto (or one it imports) must define it`);
  }
  const special = WELL_KNOWN_JSON.has(inner.fullName);
  if (special && Object.keys(fields).some((key) => key !== 'value')) {
    throw new MessageError(
      path,
      `expected {"@type": "${typeUrl}", "value": ...} for a packed ${inner.fullName.slice(1)}, got the fields ${Object.keys(fields).join(', ')}`,
    );
  }
  const plain = special ? checkNested(inner, fields['value'], `${path}.value`) : checkMessage(inner, fields, path);
  return {type_url: typeUrl, value: inner.encode(inner.fromObject(plain as Record<string, unknown>)).finish()};
}

function lookupQuiet(root: protobuf.Root, name: string): protobuf.ReflectionObject | null {
  try {
    return root.lookup(name.startsWith('.') ? name : `.${name}`);
  } catch {
    return null;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * Well-known types whose proto3 JSON form is not an object of their fields: a request's Any holds
 * them under `"value"`, and response-json.ts prints them packed in an Any the same way.
 */
export const WELL_KNOWN_JSON: ReadonlySet<string> = new Set([
  ...Object.keys(WRAPPERS),
  '.google.protobuf.Timestamp',
  '.google.protobuf.Duration',
  '.google.protobuf.Struct',
  '.google.protobuf.Value',
  '.google.protobuf.ListValue',
  '.google.protobuf.FieldMask',
  '.google.protobuf.Any',
]);

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
    case 'string': {
      if (typeof raw !== 'string') throw new MessageError(path, `expected a string, got ${describe(raw)}`);
      const bad = LONE_SURROGATE.exec(raw);
      if (bad)
        throw new MessageError(
          path,
          `expected valid Unicode text, got a lone surrogate \\u${bad[0].charCodeAt(0).toString(16)} at index ${bad.index}`,
        );
      return raw;
    }
    case 'bool':
      if (typeof raw !== 'boolean') throw new MessageError(path, `expected true or false, got ${describe(raw)}`);
      return raw;
    case 'double':
    case 'float': {
      let n: number;
      if (typeof raw === 'number' && !Number.isFinite(raw)) {
        // JSON has no Infinity: only a number too large for a double (1e400) parses as one.
        throw new MessageError(
          path,
          `expected a number (${kind}) within ±${Number.MAX_VALUE}, got a JSON number too large for a double; write "Infinity" as a string if that is meant`,
        );
      }
      if (typeof raw === 'number') n = raw;
      else if (raw === 'NaN' || raw === 'Infinity' || raw === '-Infinity') return Number(raw);
      else if (typeof raw === 'string' && raw.trim() !== '' && Number.isFinite(Number(raw))) n = Number(raw);
      else throw new MessageError(path, `expected a number (${kind}), or "NaN", "Infinity", "-Infinity" as strings, got ${describe(raw)}`);
      // Beyond the largest float32 by less than half a step still rounds to it (3.4028235e38 does).
      if (kind === 'float' && Number.isFinite(n) && !Number.isFinite(Math.fround(n))) {
        throw new MessageError(path, `${n} is out of range for float (at most ${FLOAT_MAX} either way; write "Infinity" if that is meant)`);
      }
      return n;
    }
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
    case 'bytes': {
      if (typeof raw !== 'string') throw new MessageError(path, `expected base64 bytes as a string, got ${describe(raw)}`);
      const alphabet = base64Alphabet(raw);
      if (alphabet === 'standard') return raw;
      if (alphabet === 'url') return Buffer.from(raw, 'base64url');
      throw new MessageError(
        path,
        `expected base64 bytes (standard or URL-safe alphabet, length not 1 more than a multiple of 4), got ${describe(raw)}`,
      );
    }
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
  if (typeof raw === 'number' && Number.isInteger(raw) && !Number.isSafeInteger(raw)) {
    // JSON.parse has already rounded it: 9007199254740993 arrives as 9007199254740992.
    throw new MessageError(
      path,
      `expected an integer (${kind}) beyond ±${Number.MAX_SAFE_INTEGER} as a decimal string, got the number ${raw}, which JSON cannot hold exactly; quote it`,
    );
  }
  if (typeof raw === 'number' && Number.isInteger(raw)) n = BigInt(raw);
  else if (typeof raw === 'string' && /^-?\d+$/.test(raw.trim())) n = BigInt(raw.trim());
  else throw new MessageError(path, `expected an integer (${kind}) as a number or a decimal string, got ${describe(raw)}`);
  if (n < min || n > max) throw new MessageError(path, `${n} is out of range for ${kind} (${min} to ${max})`);
  return n.toString();
}

function checkMapKey(keyType: string, key: string, path: string): void {
  if (keyType === 'string') return;
  if (keyType === 'bool') {
    if (key !== 'true' && key !== 'false')
      throw new MessageError(path, `expected a map key "true" or "false" (bool), got ${describe(key)}`);
    return;
  }
  if (!/^-?\d+$/.test(key)) throw new MessageError(path, `expected a map key that is an integer (${keyType}), got ${describe(key)}`);
  checkScalar(keyType, key, path);
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

/**
 * A dotted field path of a message type (`user_id`, `order.id`, proto or JSON names): for each step,
 * the keys a request may spell it with (`[user_id, userId]`), or why the path is not a field.
 */
export function resolveFieldPath(type: protobuf.Type, fieldPath: string): (readonly string[])[] | string {
  const steps: (readonly string[])[] = [];
  let current: protobuf.Type | undefined = type;
  for (const [index, part] of fieldPath.split('.').entries()) {
    if (!current) return `${fieldPath.split('.').slice(0, index).join('.')} is not a message, so it has no field "${part}"`;
    const field = fieldByJsonKey(current, part);
    if (!field)
      return `${type.name} has no field "${fieldPath
        .split('.')
        .slice(0, index + 1)
        .join('.')}"${didYouMean(
        part,
        current.fieldsArray.map((f) => f.name),
      )}`;
    if (field.repeated || field.map)
      return `${fieldPath
        .split('.')
        .slice(0, index + 1)
        .join('.')} is a ${field.map ? 'map' : 'list'}; a result field must be a single value`;
    steps.push([...new Set([field.name, jsonName(field)])]);
    field.resolve();
    current = field.resolvedType instanceof protobuf.Type ? field.resolvedType : undefined;
  }
  return steps;
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

/**
 * Which base64 alphabet a string is in, by one pass over its characters (no regular expression:
 * a backtracking one overflows the stack on megabytes of bytes). Padding is optional, but a
 * length of 4n+1 is never base64.
 */
function base64Alphabet(text: string): 'standard' | 'url' | undefined {
  let end = text.length;
  if (end > 0 && text.charCodeAt(end - 1) === 0x3d) end--;
  if (end > 0 && text.charCodeAt(end - 1) === 0x3d) end--;
  if (end % 4 === 1 || (end !== text.length && text.length % 4 !== 0)) return undefined;
  let standard = false;
  let url = false;
  for (let i = 0; i < end; i++) {
    const c = text.charCodeAt(i);
    if ((c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39)) continue;
    if (c === 0x2b || c === 0x2f) standard = true;
    else if (c === 0x2d || c === 0x5f) url = true;
    else return undefined;
  }
  if (standard && url) return undefined;
  return url ? 'url' : 'standard';
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  const text = JSON.stringify(value);
  return `${text.length > 40 ? `${text.slice(0, 40)}…` : text} (${typeof value})`;
}
