/* A metadata entry's checks, apart from grpc-js: `-H` flags are checked when the CLI parses them. */

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
