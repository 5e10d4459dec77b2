import * as grpc from '@grpc/grpc-js';

const KEY = /^[0-9a-z_.-]+$/;

/** Why a metadata key or value cannot be sent, or undefined when it can. Never quotes the value: it may be a secret. */
export function checkMetadataEntry(key: string, value: string): string | undefined {
  const lower = key.toLowerCase();
  if (!KEY.test(lower)) return `metadata key "${key}" may only hold letters, digits, '-', '_' and '.'`;
  if (lower.startsWith('grpc-')) return `metadata key "${key}" is reserved: keys starting with "grpc-" belong to gRPC itself`;
  if (lower.endsWith('-bin')) {
    if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(value)) {
      const at = /[^A-Za-z0-9+/_-]/.exec(value.replace(/={1,2}$/, ''))?.index ?? value.search(/=/);
      return `metadata key "${key}" ends in -bin, so its value must be base64; character ${at + 1} of its ${value.length} is not`;
    }
  } else if (!/^[\x20-\x7e]*$/.test(value)) {
    return `metadata value of "${key}" must be printable ASCII (use a key ending in -bin for binary values, base64-encoded)`;
  }
  return undefined;
}

/** Builds the metadata sent with every call; `-bin` keys take base64 values. */
export function buildMetadata(entries: Readonly<Record<string, string>>): grpc.Metadata {
  const metadata = new grpc.Metadata();
  for (const [key, value] of Object.entries(entries)) {
    const lower = key.toLowerCase();
    if (lower.endsWith('-bin')) metadata.add(lower, Buffer.from(value, 'base64'));
    else metadata.add(lower, value);
  }
  return metadata;
}

/** Metadata as recorded in a results line: a string per key, a list for a key sent more than once; `-bin` values in base64. */
export type MetadataJson = Record<string, string | string[]>;

export function metadataToJson(metadata: grpc.Metadata | undefined, omit: readonly string[] = []): MetadataJson {
  const out: MetadataJson = {};
  if (!metadata) return out;
  for (const [key, values] of Object.entries(metadata.toJSON())) {
    if (omit.includes(key) || values.length === 0) continue;
    const texts = values.map((v) => (Buffer.isBuffer(v) ? v.toString('base64') : String(v)));
    out[key] = texts.length === 1 ? texts[0]! : texts;
  }
  return out;
}
