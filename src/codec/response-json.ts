import protobuf from 'protobufjs';
import {jsonName, type JsonNames} from './json-names.js';
import {WELL_KNOWN_JSON, WRAPPERS} from './message.js';

/**
 * Messages in proto3 JSON, exactly as protoc's runtimes print them (checked against Python's
 * json_format in test/fixtures/json): JSON names by protoc's rule or `json_name`; int64 kinds as
 * decimal strings, map keys too (protobufjs keeps 64-bit keys as 8-byte hashes); float32 at its
 * shortest round-trip form (`0.1`, not `0.10000000149011612`); enums by name (an unknown number
 * stays a number); bytes as standard base64; NaN and Infinity as strings; and the well-known types
 * in their JSON forms (Timestamp, Duration, wrappers, FieldMask, Struct, Value, ListValue, Any).
 * What it prints, the request checker (message.ts) takes back as the same type.
 */

export interface JsonOptions {
  /** `json`: protoc's JSON names (or `json_name`); `proto`: the names as in the .proto. @default 'json' */
  readonly jsonNames?: JsonNames;
  /**
   * Also print fields without presence that hold their default (`0`, `""`, `false`, `[]`, `{}`, the
   * enum's zero), as json_format's `including_default_value_fields`. Fields with presence (messages,
   * oneof members, proto3 `optional`) are printed only when set. @default false
   */
  readonly emitDefaults?: boolean;
}

type Printer = (value: unknown) => unknown;

/** Decodes a message's bytes and prints it in proto3 JSON. */
export function createJsonDecoder(type: protobuf.Type, options: JsonOptions = {}): (bytes: Uint8Array) => unknown {
  const print = messagePrinter(type, options);
  return (bytes) => print(type.decode(bytes));
}

/** Prints a decoded protobufjs message (`Type#decode`) in proto3 JSON. */
export function messageToJson(type: protobuf.Type, message: unknown, options: JsonOptions = {}): unknown {
  return messagePrinter(type, options)(message);
}

const printers = new WeakMap<protobuf.Type, Map<string, Printer>>();

function messagePrinter(type: protobuf.Type, options: JsonOptions): Printer {
  const key = `${options.jsonNames ?? 'json'}/${options.emitDefaults ? 1 : 0}`;
  let byOptions = printers.get(type);
  if (!byOptions) printers.set(type, (byOptions = new Map()));
  const found = byOptions.get(key);
  if (found) return found;
  // Registered before it is built, so a recursive type finds itself (through a lazy call).
  let built: Printer | undefined;
  byOptions.set(key, (value) => built!(value));
  built = wellKnownPrinter(type, options) ?? fieldsPrinter(type, options);
  byOptions.set(key, built);
  return built;
}

interface FieldPlan {
  readonly name: string;
  readonly key: string;
  readonly print: Printer;
  readonly kind: 'map' | 'repeated' | 'presence' | 'implicit';
  readonly isDefault: (value: unknown) => boolean;
  readonly defaultJson: unknown;
}

function fieldsPrinter(type: protobuf.Type, options: JsonOptions): Printer {
  const plans: FieldPlan[] = [...type.fieldsArray]
    .sort((a, b) => a.id - b.id)
    .map((field) => {
      field.resolve();
      const print = valuePrinter(field.type, field.resolvedType, options);
      const kind = field.map ? 'map' : field.repeated ? 'repeated' : hasPresence(field) ? 'presence' : 'implicit';
      const keyPrinter = field.map ? mapKeyPrinter((field as unknown as protobuf.MapField).keyType) : undefined;
      return {
        name: field.name,
        key: options.jsonNames === 'proto' ? field.name : jsonName(field),
        print: keyPrinter ? (value) => printMap(value as Record<string, unknown>, keyPrinter, print) : print,
        kind,
        isDefault: isDefaultOf(field.type, field.resolvedType),
        defaultJson: kind === 'implicit' ? print(scalarDefault(field.type, field.resolvedType)) : undefined,
      };
    });
  const emitDefaults = options.emitDefaults === true;
  return (value) => {
    const message = value as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const plan of plans) {
      const v = message[plan.name];
      switch (plan.kind) {
        case 'repeated':
          if (Array.isArray(v) && v.length > 0) out[plan.key] = v.map(plan.print);
          else if (emitDefaults) out[plan.key] = [];
          break;
        case 'map':
          if (v && Object.keys(v).length > 0) out[plan.key] = plan.print(v);
          else if (emitDefaults) out[plan.key] = {};
          break;
        case 'presence':
          if (v !== undefined && v !== null && Object.hasOwn(message, plan.name)) out[plan.key] = plan.print(v);
          break;
        default:
          if (v !== undefined && v !== null && !plan.isDefault(v)) out[plan.key] = plan.print(v);
          else if (emitDefaults) out[plan.key] = plan.defaultJson;
      }
    }
    return out;
  };
}

/** Messages, oneof members, proto3 `optional` and proto2 singular fields know whether they are set. */
function hasPresence(field: protobuf.Field): boolean {
  return Boolean(field.partOf) || field.resolvedType instanceof protobuf.Type || field.hasPresence;
}

function printMap(map: Record<string, unknown>, printKey: (key: string) => string, printValue: Printer): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(map)) out[printKey(key)] = printValue(map[key]);
  return out;
}

const SIGNED_64 = new Set(['int64', 'sint64', 'sfixed64']);
const UNSIGNED_64 = new Set(['uint64', 'fixed64']);

/** protobufjs keeps a 64-bit map key as an 8-byte hash string (`util.longToHash`): back to decimal. */
function mapKeyPrinter(keyType: string): (key: string) => string {
  if (!SIGNED_64.has(keyType) && !UNSIGNED_64.has(keyType)) return (key) => key;
  const unsigned = UNSIGNED_64.has(keyType);
  return (key) => (key.length === 8 ? protobuf.util.LongBits.fromHash(key).toLong(unsigned).toString() : key);
}

function valuePrinter(kind: string, resolved: protobuf.ReflectionObject | null, options: JsonOptions): Printer {
  if (resolved instanceof protobuf.Type) return messagePrinter(resolved, options);
  if (resolved instanceof protobuf.Enum) {
    if (resolved.fullName === '.google.protobuf.NullValue') return () => null;
    const names = resolved.valuesById;
    return (value) => names[value as number] ?? value;
  }
  return scalarPrinter(kind);
}

export function scalarPrinter(kind: string): Printer {
  if (SIGNED_64.has(kind) || UNSIGNED_64.has(kind)) return printLong;
  switch (kind) {
    case 'float':
      return (value) => printFloat(value as number, shortestFloat);
    case 'double':
      return (value) => printFloat(value as number, (n) => n);
    case 'bytes':
      return (value) => base64(value as Uint8Array | string);
    default:
      return (value) => value;
  }
}

function printLong(value: unknown): string {
  return typeof value === 'object' && value !== null ? String(value) : String(value ?? 0);
}

function printFloat(value: number, finite: (n: number) => number): number | string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return 'Infinity';
  if (value === -Infinity) return '-Infinity';
  return finite(value);
}

/**
 * The shortest decimal that reads back as the same float32, found as protobuf's own runtimes do
 * (Python `type_checkers.ToShortestFloat`): 6 significant digits, then 7, 8, 9 until it round-trips.
 */
export function shortestFloat(value: number): number {
  for (let precision = 6; precision < 9; precision++) {
    const rounded = Number(value.toPrecision(precision));
    if (Math.fround(rounded) === value) return rounded;
  }
  return Number(value.toPrecision(9));
}

function base64(value: Uint8Array | string): string {
  if (typeof value === 'string') return value;
  return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64');
}

function isDefaultOf(kind: string, resolved: protobuf.ReflectionObject | null): (value: unknown) => boolean {
  if (resolved instanceof protobuf.Enum) return (value) => value === 0;
  if (SIGNED_64.has(kind) || UNSIGNED_64.has(kind)) {
    return (value) =>
      typeof value === 'object' && value !== null
        ? (value as {low: number; high: number}).low === 0 && (value as {high: number}).high === 0
        : Number(value) === 0;
  }
  switch (kind) {
    case 'string':
      return (value) => value === '';
    case 'bool':
      return (value) => value === false;
    case 'bytes':
      return (value) => (value as {length: number}).length === 0;
    default:
      return (value) => value === 0;
  }
}

function scalarDefault(kind: string, resolved: protobuf.ReflectionObject | null): unknown {
  if (resolved instanceof protobuf.Enum) return 0;
  if (SIGNED_64.has(kind) || UNSIGNED_64.has(kind)) return 0;
  if (kind === 'string') return '';
  if (kind === 'bool') return false;
  if (kind === 'bytes') return new Uint8Array(0);
  return 0;
}

function wellKnownPrinter(type: protobuf.Type, options: JsonOptions): Printer | undefined {
  const wrapped = WRAPPERS[type.fullName];
  if (wrapped) {
    const print = scalarPrinter(wrapped);
    const fallback = print(scalarDefault(wrapped, null));
    return (value) => {
      const inner = (value as Record<string, unknown>)['value'];
      return inner === undefined || inner === null ? fallback : print(inner);
    };
  }
  switch (type.fullName) {
    case '.google.protobuf.Timestamp':
      return formatTimestamp;
    case '.google.protobuf.Duration':
      return formatDuration;
    case '.google.protobuf.FieldMask':
      return (value) =>
        ((value as {paths?: string[]}).paths ?? []).map((p) => p.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase())).join(',');
    case '.google.protobuf.Struct':
      return structToJson;
    case '.google.protobuf.Value':
      return valueToJson;
    case '.google.protobuf.ListValue':
      return listToJson;
    case '.google.protobuf.Any':
      return (value) => anyToJson(type.root as protobuf.Root, value as {type_url?: string; value?: Uint8Array}, options);
    default:
      return undefined;
  }
}

/**
 * `{"@type", ...fields}`, or `{"@type", "value": <its JSON>}` for a packed well-known type. One whose
 * type the schema does not hold stays packed, `{"@type", "value": <base64>}`, so nothing is lost
 * (and the request checker takes that form back).
 */
function anyToJson(root: protobuf.Root, any: {type_url?: string; value?: Uint8Array}, options: JsonOptions): unknown {
  const typeUrl = any.type_url ?? '';
  const bytes = any.value ?? new Uint8Array(0);
  if (typeUrl === '') return {};
  const inner = lookupType(root, typeUrl.slice(typeUrl.lastIndexOf('/') + 1));
  if (!inner) return {'@type': typeUrl, value: base64(bytes)};
  let decoded: unknown;
  try {
    decoded = inner.decode(bytes);
  } catch {
    return {'@type': typeUrl, value: base64(bytes)};
  }
  const json = messagePrinter(inner, options)(decoded);
  return WELL_KNOWN_JSON.has(inner.fullName) ? {'@type': typeUrl, value: json} : {'@type': typeUrl, ...(json as object)};
}

export function lookupType(root: protobuf.Root, name: string): protobuf.Type | undefined {
  try {
    const found = root.lookup(name.startsWith('.') ? name : `.${name}`);
    return found instanceof protobuf.Type ? found : undefined;
  } catch {
    return undefined;
  }
}

/** 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, the range of a Timestamp in proto3 JSON. */
const MIN_TIMESTAMP_SECONDS = -62_135_596_800n;
const MAX_TIMESTAMP_SECONDS = 253_402_300_799n;

/**
 * RFC 3339 in UTC with 0, 3, 6 or 9 fractional digits. A value outside years 1-9999 has no such
 * form: it is kept as `{seconds, nanos}` rather than failing the record, whose call did succeed.
 */
function formatTimestamp(value: unknown): unknown {
  const {seconds, nanos} = secondsAndNanos(value);
  if (seconds < MIN_TIMESTAMP_SECONDS || seconds > MAX_TIMESTAMP_SECONDS)
    return nanos === 0 ? {seconds: String(seconds)} : {seconds: String(seconds), nanos};
  const whole = new Date(Number(seconds) * 1000).toISOString().slice(0, 19);
  return `${whole}${fraction(nanos)}Z`;
}

/** Seconds with 0, 3, 6 or 9 fractional digits and an `s`: `"1.5s"` prints `"1.500s"`. */
function formatDuration(value: unknown): string {
  const {seconds, nanos} = secondsAndNanos(value);
  const negative = seconds < 0n || nanos < 0;
  const abs = seconds < 0n ? -seconds : seconds;
  return `${negative ? '-' : ''}${abs}${fraction(Math.abs(nanos))}s`;
}

function secondsAndNanos(value: unknown): {seconds: bigint; nanos: number} {
  const object = (value ?? {}) as Record<string, unknown>;
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
  const fields = (value as {fields?: Record<string, unknown>} | undefined)?.fields ?? {};
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(fields)) out[key] = valueToJson(fields[key]);
  return out;
}

function listToJson(value: unknown): unknown {
  return ((value as {values?: unknown[]} | undefined)?.values ?? []).map(valueToJson);
}

function valueToJson(value: unknown): unknown {
  const v = (value ?? {}) as Record<string, unknown>;
  if (has(v, 'structValue')) return structToJson(v['structValue']);
  if (has(v, 'listValue')) return listToJson(v['listValue']);
  if (has(v, 'stringValue')) return v['stringValue'];
  if (has(v, 'numberValue')) return printFloat(v['numberValue'] as number, (n) => n);
  if (has(v, 'boolValue')) return v['boolValue'];
  return null; // nullValue, or no kind set
}

function has(object: Record<string, unknown>, key: string): boolean {
  return Object.hasOwn(object, key) && object[key] !== undefined && object[key] !== null;
}
