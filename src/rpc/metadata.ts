import * as grpc from '@grpc/grpc-js';

export {checkMetadataEntry} from './metadata-entry.js';

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
