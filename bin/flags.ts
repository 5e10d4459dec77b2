import {InvalidArgumentError} from 'commander';
import {DURATION_HINT, parseDuration} from '../src/duration.js';
import {MAX_LINE_BYTES, parseSize, SIZE_HINT} from '../src/size.js';

/** Commander argument parsers: each throws InvalidArgumentError (exit 2) naming what it expected. */

export function parseIntFlag(min: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min) {
      throw new InvalidArgumentError(`expected an integer from ${min} and up, got "${value}"`);
    }
    return n;
  };
}

export function parseNumberFlag(min: number) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || n < min) throw new InvalidArgumentError(`expected a number from ${min} and up, got "${value}"`);
    return n;
  };
}

export function parseDurationFlag(value: string): string {
  if (parseDuration(value) === undefined) throw new InvalidArgumentError(`expected ${DURATION_HINT}, got "${value}"`);
  return value;
}

export function parseSizeFlag(value: string): number {
  const bytes = parseSize(value);
  if (bytes === undefined) throw new InvalidArgumentError(`expected ${SIZE_HINT}, got "${value}"`);
  if (bytes > MAX_LINE_BYTES) throw new InvalidArgumentError(`expected at most 512MiB, got "${value}"`);
  return bytes;
}

export function parseWorkersFlag(value: string): number | 'auto' {
  if (value.trim() === 'auto') return 'auto';
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || n < 1 || n > 256) throw new InvalidArgumentError(`expected an integer from 1 to 256 or "auto", got "${value}"`);
  return n;
}
