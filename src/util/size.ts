/** Byte sizes at the edges: `4MiB`, `16MB`, `512KiB`, or a number of bytes; bytes inside. */

const UNIT_BYTES: Record<string, number> = {b: 1, kb: 1000, kib: 1024, mb: 1000 ** 2, mib: 1024 ** 2, gb: 1000 ** 3, gib: 1024 ** 3};
const SIZE = /^(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib|gb|gib)?$/i;

export const SIZE_HINT = 'a size like 16MiB, 64MB, 512KiB or a number of bytes';

/** The most a line can be: V8 cannot hold a longer string (about 2^29 characters). */
export const MAX_LINE_BYTES = 512 * 1024 ** 2;

/** Parses a size into bytes (a whole number from 1), or undefined when it is not one. */
export function parseSize(value: unknown): number | undefined {
  let bytes: number;
  if (typeof value === 'number') bytes = value;
  else if (typeof value === 'string') {
    const match = SIZE.exec(value.trim());
    if (!match) return undefined;
    bytes = Number(match[1]) * UNIT_BYTES[(match[2] ?? 'b').toLowerCase()]!;
  } else return undefined;
  return Number.isFinite(bytes) && bytes >= 1 && Number.isInteger(Math.round(bytes)) ? Math.round(bytes) : undefined;
}
