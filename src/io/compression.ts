import {closeSync, existsSync, ftruncateSync, openSync, readFileSync, readSync, statSync, writeSync} from 'node:fs';
import {constants as zlibConstants, gunzipSync, gzipSync} from 'node:zlib';

/**
 * Compressed inputs and outputs (node:zlib: gzip only; Node 20's zlib has no zstd, bzip2 or xz).
 *
 * Input is told by its first bytes, not its name: a `.jsonl.gz` is read through gunzip, and its
 * records are counted in the decompressed stream (line numbers, progress, resume).
 *
 * Output (`output`/`failures` ending in `.gz`) is written as a series of gzip members, one per
 * flush: each flush is a complete, checksummed member, and RFC 1952 readers (gunzip, zcat, Python's
 * gzip, node:zlib) read a series of members as one file. So a crash loses nothing flushed before it
 * (only a member being written can be cut), and a resume appends more members after repairing the
 * tail (`repairGzipTail`).
 */

/** The compressions told apart by their first bytes. */
export type Compression = 'gzip' | 'zstd' | 'bzip2' | 'xz';

const MAGIC: readonly (readonly [Compression, readonly number[]])[] = [
  ['gzip', [0x1f, 0x8b]],
  ['zstd', [0x28, 0xb5, 0x2f, 0xfd]],
  ['bzip2', [0x42, 0x5a, 0x68]],
  ['xz', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
];

/** The compression of a regular file's first bytes, or undefined for plain text (or a file that cannot be read: the reader says why). */
export function compressionOf(file: string): Compression | undefined {
  let fd: number;
  try {
    if (!statSync(file).isFile()) return undefined; // a FIFO or a device is read once, by the run
    fd = openSync(file, 'r');
  } catch {
    return undefined;
  }
  try {
    const head = Buffer.alloc(6);
    const read = readSync(fd, head, 0, head.length, 0);
    // bzip2's "BZh" is also plain text: it counts only with a block size digit after it.
    for (const [name, magic] of MAGIC) {
      if (
        read >= magic.length &&
        magic.every((byte, i) => head[i] === byte) &&
        (name !== 'bzip2' || (read >= 4 && head[3]! >= 0x31 && head[3]! <= 0x39))
      )
        return name;
    }
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/** Why an input in `compression` cannot be read, with the command that makes it readable. */
export function unsupportedCompression(file: string, compression: Exclude<Compression, 'gzip'>): string {
  const tool = {zstd: 'zstd', bzip2: 'bzip2', xz: 'xz'}[compression];
  return `${file} is ${compression}-compressed, and Node 20's zlib reads only gzip: decompress it first (${tool} -dk ${file}) and give the .jsonl, or recompress it with gzip (${tool} -dc ${file} | gzip > ${file.replace(/\.[^./]+$/, '')}.gz)`;
}

/** Whether an output path is written compressed. */
export function isGzipPath(file: string): boolean {
  return /\.gz$/i.test(file);
}

/** One complete gzip member holding `bytes`. */
export function gzipMember(bytes: Buffer): Buffer {
  return gzipSync(bytes);
}

/** The 10 header bytes `gzipMember` starts every member with (no name, no time, OS unix). */
const MEMBER_HEADER = gzipSync(Buffer.alloc(0)).subarray(0, 10);

/** Offsets of the members of a file written by `gzipMember` (found by their header: 10 fixed bytes). */
function memberStarts(file: string): number[] {
  const starts: number[] = [];
  const fd = openSync(file, 'r');
  try {
    const chunk = Buffer.alloc(1024 * 1024);
    let offset = 0;
    for (;;) {
      const read = readSync(fd, chunk, 0, chunk.length, offset);
      if (read === 0) break;
      const bytes = chunk.subarray(0, read);
      for (let i = bytes.indexOf(MEMBER_HEADER); i !== -1; i = bytes.indexOf(MEMBER_HEADER, i + 1)) starts.push(offset + i);
      if (read < chunk.length) break;
      offset += read - (MEMBER_HEADER.length - 1); // a header across two chunks is found in the next
    }
  } finally {
    closeSync(fd);
  }
  return [...new Set(starts)].sort((a, b) => a - b);
}

/** What a member (or the part of it that was written) decompresses to; a cut member gives what it has. */
function inflateMember(bytes: Buffer): Buffer {
  try {
    return gunzipSync(bytes, {finishFlush: zlibConstants.Z_SYNC_FLUSH});
  } catch {
    return Buffer.alloc(0);
  }
}

/**
 * Cuts a gzip output back to its last whole line, the way `repairTail` does a plain file: members
 * after the last newline (cut by a crash, or holding the start of a line never finished) are
 * dropped, and the whole lines of a cut member are written again as a member of their own. Throws
 * when the file was not written by grpc-batch (it does not start with a member header). Returns the
 * decompressed bytes dropped.
 */
export function repairGzipTail(file: string): number {
  if (!existsSync(file)) return 0;
  const size = statSync(file).size;
  if (size === 0) return 0;
  const starts = memberStarts(file);
  if (starts[0] !== 0)
    throw new Error(
      `${file} is not a gzip file written by grpc-batch (it does not start with a gzip member); move it away, or resume with another path`,
    );
  const fd = openSync(file, 'r+');
  try {
    let dropped = 0;
    for (let i = starts.length - 1; i >= 0; i--) {
      const start = starts[i]!;
      const end = i + 1 < starts.length ? starts[i + 1]! : size;
      const bytes = Buffer.alloc(end - start);
      readSync(fd, bytes, 0, bytes.length, start);
      const text = inflateMember(bytes);
      const newline = text.lastIndexOf(0x0a);
      if (newline === text.length - 1 && isWholeMember(bytes)) {
        if (end < size) ftruncateSync(fd, end);
        return dropped;
      }
      ftruncateSync(fd, start);
      if (newline !== -1) {
        const kept = gzipMember(text.subarray(0, newline + 1));
        writeSync(fd, kept, 0, kept.length, start);
        return dropped + text.length - newline - 1;
      }
      dropped += text.length;
    }
    return dropped;
  } finally {
    closeSync(fd);
  }
}

function isWholeMember(bytes: Buffer): boolean {
  try {
    gunzipSync(bytes);
    return true;
  } catch {
    return false;
  }
}

/** Newlines in a gzip file, decompressed (a failures file's `.lines` check; held in memory, as failures files are small next to inputs). */
export function countGzipNewlines(file: string): number {
  const bytes = gunzipSync(readFileSync(file), {finishFlush: zlibConstants.Z_SYNC_FLUSH});
  let count = 0;
  for (let i = bytes.indexOf(0x0a); i !== -1; i = bytes.indexOf(0x0a, i + 1)) count++;
  return count;
}
