import {createHash, type Hash} from 'node:crypto';
import {closeSync, openSync, readFileSync, readSync} from 'node:fs';
import {constants, gunzipSync} from 'node:zlib';
import {compressionOf} from './compression.js';

/** The first `bytes` bytes of a run's input and their SHA-256 (hex). */
export interface InputRead {
  readonly bytes: number;
  readonly sha256: string;
}

/**
 * A SHA-256 of the input bytes read so far, updated as the reader takes each chunk (node:crypto,
 * hardware-accelerated: a few percent of reading the file). A run records it before it sends any
 * record read from those bytes, so `--resume` can tell whether the input still starts with exactly
 * what the run read: a record with a result is then the same record, whatever its size or mtime.
 */
export class InputDigest {
  readonly #hash: Hash = createHash('sha256');
  #bytes = 0;

  /** Bytes hashed so far. */
  get bytes(): number {
    return this.#bytes;
  }

  update(chunk: Buffer): void {
    this.#hash.update(chunk);
    this.#bytes += chunk.length;
  }

  /** The hash of the bytes read so far (the digest goes on). */
  snapshot(): {bytes: number; sha256: string} {
    return {bytes: this.#bytes, sha256: this.#hash.copy().digest('hex')};
  }
}

/** SHA-256 (hex) of the first `bytes` bytes of `file`, or undefined when the file is shorter. Reads synchronously, 1 MiB at a time. */
export function hashFilePrefix(file: string, bytes: number): string | undefined {
  const hash = createHash('sha256');
  const buffer = Buffer.allocUnsafe(Math.min(1024 * 1024, Math.max(bytes, 1)));
  const fd = openSync(file, 'r');
  try {
    let at = 0;
    while (at < bytes) {
      const n = readSync(fd, buffer, 0, Math.min(buffer.length, bytes - at), at);
      if (n === 0) return undefined;
      hash.update(buffer.subarray(0, n));
      at += n;
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}

/** Counts the non-blank lines of `file`, stopping once `atLeast` are found (the file may be large). Undefined when there is no file. */
export function countLinesUpTo(file: string, atLeast: number): number | undefined {
  if (compressionOf(file) === 'gzip') return countGzipLines(file);
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const buffer = Buffer.allocUnsafe(1024 * 1024);
  let count = 0;
  let lineHasText = false;
  try {
    for (let at = 0; count < atLeast; ) {
      const n = readSync(fd, buffer, 0, buffer.length, at);
      if (n === 0) break;
      at += n;
      for (let i = 0; i < n; i++) {
        const byte = buffer[i]!;
        if (byte === 0x0a) {
          if (lineHasText) count++;
          lineHasText = false;
        } else if (byte !== 0x20 && byte !== 0x0d && byte !== 0x09) lineHasText = true;
      }
    }
  } finally {
    closeSync(fd);
  }
  return lineHasText ? count + 1 : count;
}

/**
 * The non-blank lines of a gzip file (a `.gz` results file: one gzip member per flush), counted in
 * its decompressed bytes; a last member a crash cut short counts up to its last whole line, as
 * `--resume` keeps it. Decompressed whole, in memory: done once, at `--resume`.
 */
function countGzipLines(file: string): number {
  const text = gunzipSync(readFileSync(file), {finishFlush: constants.Z_SYNC_FLUSH});
  let count = 0;
  let start = 0;
  for (let newline = text.indexOf(0x0a); newline !== -1; newline = text.indexOf(0x0a, start)) {
    if (/\S/.test(text.toString('latin1', start, newline))) count++;
    start = newline + 1;
  }
  return count;
}
