import protobuf from 'protobufjs';
import {WRAPPERS} from './message.js';

/**
 * Turns a decoded response (proto-loader's object: lowerCamelCase names, int64 as strings, enums by
 * name, bytes as base64) into its proto3 JSON form for the well-known types, which proto-loader
 * leaves as plain messages: a Timestamp becomes `"2024-01-31T12:00:00.500Z"` instead of
 * `{seconds, nanos}`, a Duration `"1.5s"`, a wrapper its value, a FieldMask `"a.b,c"`, Struct,
 * Value and ListValue plain JSON, and an Any `{"@type", ...}`. So the results file holds what
 * `grpcurl` or any proto3 JSON reader would print.
 */
export type ResponseMapper = (message: unknown) => unknown;

type Mapper = (value: unknown) => unknown;

/** What an empty wrapper stands for: the default of the scalar it wraps. */
function wrapperDefault(scalar: string): unknown {
  if (scalar === 'int64' || scalar === 'uint64') return '0';
  if (scalar === 'bool') return false;
  if (scalar === 'string' || scalar === 'bytes') return '';
  return 0;
}

/** The mapper for `type`, or `undefined` when no field of it (however deep) is a well-known type: nothing to do. */
export function createResponseMapper(type: protobuf.Type): ResponseMapper | undefined {
  return mapperFor(type, new Map());
}

/**
 * An `Any`: proto-loader unpacks one whose type the proto imports into `{...fields, "@type"}`;
 * its fields are mapped as that type's, and a packed well-known type becomes
 * `{"@type", "value": <its JSON>}` as proto3 JSON has it. One of an unknown type stays packed,
 * as `{"@type", "value": <base64 bytes>}`, so nothing is lost.
 */
function anyMapper(root: protobuf.Root, building: Map<string, Mapper | undefined | 'pending'>): Mapper {
  return (value) => {
    if (!isObject(value)) return value;
    if (typeof value['@type'] !== 'string') {
      return value['type_url'] === undefined && value['typeUrl'] === undefined ? value : {'@type': value['type_url'] ?? value['typeUrl'], value: value['value'] ?? ''};
    }
    const typeUrl = value['@type'];
    const {'@type': _, ...fields} = value;
    let inner: protobuf.Type | undefined;
    try {
      inner = root.lookupType(typeUrl.slice(typeUrl.lastIndexOf('/') + 1));
    } catch {
      return value;
    }
    const known = wellKnown(inner.fullName, root, building);
    if (known) return {'@type': typeUrl, value: known(fields)};
    const mapper = mapperFor(inner, building);
    return {'@type': typeUrl, ...(mapper ? (mapper(fields) as Record<string, unknown>) : fields)};
  };
}

function wellKnown(fullName: string, root: protobuf.Root, building: Map<string, Mapper | undefined | 'pending'>): Mapper | undefined {
  const wrapped = WRAPPERS[fullName];
  if (wrapped) {
    const fallback = wrapperDefault(wrapped);
    return (value) => (isObject(value) && value['value'] !== undefined ? value['value'] : fallback);
  }
  switch (fullName) {
    case '.google.protobuf.Timestamp':
      return (value) => formatTimestamp(value);
    case '.google.protobuf.Duration':
      return (value) => formatDuration(value);
    case '.google.protobuf.FieldMask':
      return (value) => (isObject(value) && Array.isArray(value['paths']) ? value['paths'].map((p) => protobuf.util.camelCase(String(p))).join(',') : '');
    case '.google.protobuf.Struct':
      return structToJson;
    case '.google.protobuf.Value':
      return valueToJson;
    case '.google.protobuf.ListValue':
      return listToJson;
    case '.google.protobuf.Any':
      return anyMapper(root, building);
    default:
      return undefined;
  }
}

/**
 * Builds (once per type) a mapper over the fields that hold a well-known type, directly or deeper.
 * `building` breaks recursive types: a type met again while its own mapper is being built is
 * reached through a lazy reference.
 */
function mapperFor(type: protobuf.Type, building: Map<string, Mapper | undefined | 'pending'>): Mapper | undefined {
  const known = wellKnown(type.fullName, type.root, building);
  if (known) return known;
  const seen = building.get(type.fullName);
  if (seen === 'pending') {
    return (value) => {
      const built = building.get(type.fullName);
      return typeof built === 'function' ? built(value) : value;
    };
  }
  if (building.has(type.fullName)) return seen as Mapper | undefined;
  building.set(type.fullName, 'pending');
  const fields: [string, Mapper][] = [];
  for (const field of type.fieldsArray) {
    field.resolve();
    if (!(field.resolvedType instanceof protobuf.Type)) continue;
    const inner = mapperFor(field.resolvedType, building);
    if (!inner) continue;
    const name = protobuf.util.camelCase(field.name);
    if (field.map) fields.push([name, (value) => (isObject(value) ? mapValues(value, inner) : value)]);
    else if (field.repeated) fields.push([name, (value) => (Array.isArray(value) ? value.map(inner) : value)]);
    else fields.push([name, inner]);
  }
  const mapper: Mapper | undefined = fields.length === 0 ? undefined : (value) => {
    if (!isObject(value)) return value;
    const out: Record<string, unknown> = {...value};
    for (const [name, inner] of fields) if (out[name] !== undefined && out[name] !== null) out[name] = inner(out[name]);
    return out;
  };
  building.set(type.fullName, mapper);
  return mapper;
}

/**
 * RFC 3339 in UTC with 0, 3, 6 or 9 fractional digits, as proto3 JSON prints it. A value outside
 * years 1-9999 has no such form: it is kept as `{seconds, nanos}` rather than failing the record,
 * whose call did succeed.
 */
function formatTimestamp(value: unknown): unknown {
  const {seconds, nanos} = secondsAndNanos(value);
  if (seconds < MIN_TIMESTAMP_SECONDS || seconds > MAX_TIMESTAMP_SECONDS) return value;
  const whole = new Date(Number(seconds) * 1000).toISOString().slice(0, 19);
  return `${whole}${fraction(nanos)}Z`;
}

/** 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, the range of a Timestamp in proto3 JSON. */
const MIN_TIMESTAMP_SECONDS = -62_135_596_800n;
const MAX_TIMESTAMP_SECONDS = 253_402_300_799n;

/** Seconds with 0, 3, 6 or 9 fractional digits and an `s`: `"1.5s"`, `"-0.250s"`. */
function formatDuration(value: unknown): string {
  const {seconds, nanos} = secondsAndNanos(value);
  const negative = seconds < 0n || nanos < 0;
  const abs = seconds < 0n ? -seconds : seconds;
  return `${negative ? '-' : ''}${abs}${fraction(Math.abs(nanos))}s`;
}

function secondsAndNanos(value: unknown): {seconds: bigint; nanos: number} {
  const object = isObject(value) ? value : {};
  return {seconds: BigInt(String(object['seconds'] ?? 0)), nanos: Number(object['nanos'] ?? 0)};
}

function fraction(nanos: number): string {
  if (nanos === 0) return '';
  const digits = String(nanos).padStart(9, '0');
  if (nanos % 1_000_000 === 0) return `.${digits.slice(0, 3)}`;
  if (nanos % 1_000 === 0) return `.${digits.slice(0, 6)}`;
  return `.${digits}`;
}

function structToJson(value: unknown): unknown {
  return isObject(value) && isObject(value['fields']) ? mapValues(value['fields'], valueToJson) : {};
}

function listToJson(value: unknown): unknown {
  return isObject(value) && Array.isArray(value['values']) ? value['values'].map(valueToJson) : [];
}

function valueToJson(value: unknown): unknown {
  if (!isObject(value)) return null;
  if (value['structValue'] !== undefined) return structToJson(value['structValue']);
  if (value['listValue'] !== undefined) return listToJson(value['listValue']);
  if (value['stringValue'] !== undefined) return value['stringValue'];
  if (value['numberValue'] !== undefined) return value['numberValue'];
  if (value['boolValue'] !== undefined) return value['boolValue'];
  return null; // nullValue, or no kind set
}

function mapValues(object: Record<string, unknown>, mapper: Mapper): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(object)) out[key] = mapper(value);
  return out;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
