import type protobuf from 'protobufjs';

/** How fields are named in the JSON grpc-batch writes (`jsonNames` job key). */
export type JsonNames = 'json' | 'proto';

/**
 * A field name turned into its JSON name by protoc's rule (`ToJsonName`): each `_` is dropped and
 * the character after it upper-cased. So `field_1x` is `field1x`, `_lead` is `Lead`, `a__b` is `aB`
 * and `trailing_` is `trailing`: what every protoc-generated runtime, grpcurl and Python's
 * json_format print. protobufjs's own `camelCase` differs (it leaves `_1` and `__` alone).
 */
export function protocJsonName(name: string): string {
  let out = '';
  let upper = false;
  for (const char of name) {
    if (char === '_') upper = true;
    else {
      out += upper ? char.toUpperCase() : char;
      upper = false;
    }
  }
  return out;
}

/** The JSON name of a field: its `json_name` when the schema gives one, else protoc's rule. */
export function jsonName(field: protobuf.Field): string {
  const explicit = field.options?.['json_name'];
  return typeof explicit === 'string' ? explicit : protocJsonName(field.name);
}
