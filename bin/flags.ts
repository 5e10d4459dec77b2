import {InvalidArgumentError, Option} from 'commander';
import {DURATION_HINT, parseDuration} from '../src/util/duration.js';
import type {LogFormat} from '../src/util/log.js';
import {MAX_LINE_BYTES, parseSize, SIZE_HINT} from '../src/util/size.js';
import {checkMetadataEntry} from '../src/rpc/metadata-entry.js';
import {parseStatus, Status, statusName} from '../src/codec/status.js';

/**
 * Commander argument parsers: each throws InvalidArgumentError (exit 2) naming what it expected.
 * This file is loaded by every command, `--help` and `--version` included: it imports only small
 * modules with no dependency (the heavy ones load in each command's action, see bin/main.ts).
 */

/** src/util/log.ts's LOG_FORMATS, written again so that `--help` does not load pino; the types keep the two lists alike. */
const LOG_FORMATS = ['json', 'pretty'] as const satisfies readonly LogFormat[];
/** A compile error when src/util/log.ts gains a format that this list lacks. */
type MissingLogFormat = Exclude<LogFormat, (typeof LOG_FORMATS)[number]>;
void (true satisfies [MissingLogFormat] extends [never] ? true : never);

/** `--log-format json|pretty`, shared by the commands that log. */
export function logFormatOption(): Option {
  return new Option('--log-format <format>', 'log lines on stderr: pretty (default on a terminal) or json (default otherwise)').choices(
    LOG_FORMATS,
  );
}

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
    if (value.trim() === '' || !Number.isFinite(n) || n < min)
      throw new InvalidArgumentError(`expected a number from ${min} and up, got "${value}"`);
    return n;
  };
}

/** A duration flag: `500ms`, `1m30s`, or a bare number of milliseconds (as in a job file). */
export function parseDurationFlag(value: string): string | number {
  if (/^\s*\d+(\.\d+)?\s*$/.test(value)) return Number(value);
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
  if (!/^\d+$/.test(value.trim()) || n < 1 || n > 256)
    throw new InvalidArgumentError(`expected an integer from 1 to 256 or "auto", got "${value}"`);
  return n;
}

/** `-H 'key: value'`, as grpcurl and curl write headers (repeatable): `describe` and `run`. */
export function collectHeaderFlag(value: string, previous: string[]): string[] {
  const colon = value.indexOf(':');
  if (colon <= 0) throw new InvalidArgumentError(`expected "name: value", got "${value}"`);
  const problem = checkMetadataEntry(value.slice(0, colon).trim(), value.slice(colon + 1).trim());
  if (problem) throw new InvalidArgumentError(problem);
  return [...previous, value];
}

/** A repeatable flag's values, in order. */
export function collectFlag(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** `--only-status UNAVAILABLE,DEADLINE_EXCEEDED`: status names or numbers, and INVALID; the names, comma-separated (`14,deadline_exceeded` -> `UNAVAILABLE,DEADLINE_EXCEEDED`). */
export function parseStatusListFlag(value: string): string {
  const names = new Set<string>();
  for (const word of value
    .split(',')
    .map((w) => w.trim())
    .filter((w) => w !== '')) {
    if (word.toUpperCase() === 'INVALID') names.add('INVALID');
    else {
      const code = parseStatus(word);
      if (code === undefined || code === Status.OK)
        throw new InvalidArgumentError(
          `expected failed statuses like UNAVAILABLE,DEADLINE_EXCEEDED (names or numbers 1-16, or INVALID), got "${word}"`,
        );
      names.add(statusName(code));
    }
  }
  if (names.size === 0) throw new InvalidArgumentError(`expected failed statuses like UNAVAILABLE,DEADLINE_EXCEEDED, got "${value}"`);
  return [...names].join(',');
}
