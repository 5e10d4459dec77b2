import {closeSync, existsSync, openSync, readFileSync, readSync} from 'node:fs';
import {compressionOf, countGzipNewlines} from './compression.js';

/** The suffix of the file that maps each record of a failures file to its line in the original input. */
export const ORIGIN_SUFFIX = '.lines';

/**
 * The original input lines of the records of `file` (a failures file), read from `file.lines`, or
 * undefined when there is none or it no longer matches the file (lines added or removed since).
 * Records edited in place (an invalid record fixed) keep their line.
 */
export function readOrigins(
  file: string,
): {origins: Int32Array; statuses: readonly (string | undefined)[]} | {problem: string} | undefined {
  const originFile = `${file}${ORIGIN_SUFFIX}`;
  if (!existsSync(originFile)) return undefined;
  // `1207<TAB>UNAVAILABLE`: the line, then the status the record failed with (older files: the line only).
  const rows = readFileSync(originFile, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => l.split('\t'));
  const numbers = rows.map(([line]) => Number(line));
  const lines = countNewlines(file);
  if (numbers.some((n) => !Number.isSafeInteger(n) || n < 1) || numbers.length !== lines) {
    return {
      problem: `${originFile} does not match ${file} (${numbers.length} lines for ${lines} records: lines were added or removed); results carry this file's line numbers`,
    };
  }
  return {origins: Int32Array.from(numbers), statuses: rows.map(([, status]) => status || undefined)};
}

function countNewlines(file: string): number {
  if (compressionOf(file) === 'gzip') return countGzipNewlines(file);
  const fd = openSync(file, 'r');
  try {
    const chunk = Buffer.alloc(1024 * 1024);
    let count = 0;
    for (let read = readSync(fd, chunk); read > 0; read = readSync(fd, chunk)) {
      const bytes = chunk.subarray(0, read);
      for (let i = bytes.indexOf(0x0a); i !== -1; i = bytes.indexOf(0x0a, i + 1)) count++;
    }
    return count;
  } finally {
    closeSync(fd);
  }
}
