import {createReadStream, statSync} from 'node:fs';
import path from 'node:path';
import type {Readable} from 'node:stream';
import {createGunzip} from 'node:zlib';
import {IoError, UsageError} from '../errors.js';
import {compressionOf} from './compression.js';
import {ORIGIN_SUFFIX, readOrigins} from './origins.js';
import type {InputDigest} from './input-digest.js';

/**
 * Streaming input. Records are read one at a time, only as fast as the run asks for them, so memory
 * stays flat whatever the input size. Each record keeps its 1-based line number and its exact text,
 * so the failures file holds failed records exactly as they were input.
 */
export interface InputRecord {
  /** 1-based line number in the input (or index in a module's `requests()`). */
  readonly line: number;
  /** The record's text exactly as input (for a module: its JSON). */
  readonly text: string;
  /** Already-parsed value (module input); undefined for JSONL, parsed by the run. */
  readonly value?: unknown;
  /** Why the line could not even be read as text (UTF-8 error, too long). */
  readonly error?: string;
  /** The line's bytes, when they are not valid UTF-8 (so the failures file can hold them as they were). */
  readonly raw?: Buffer;
  /** Where an over-long line is in its file (it is not held in memory; the failures file copies it from there). */
  readonly span?: {readonly file: string; readonly offset: number; readonly length: number};
  /** The record's line in the original input, when this input is a failures file that says so (its `.lines` file). */
  readonly origin?: number;
  /** What reading took off `text` and the failures file puts back, byte for byte: a BOM before line 1, a CR before the newline. */
  readonly trimmed?: {readonly bom?: true; readonly cr?: true};
}

export interface JsonlOptions {
  /** Longest line accepted, in bytes; a longer one is reported invalid. @default 4 MiB */
  readonly maxLineBytes?: number;
  /** Hashes every byte read, as it is read (see `InputDigest`). */
  readonly digest?: InputDigest | undefined;
}

export const DEFAULT_MAX_LINE_BYTES = 4 * 1024 * 1024;
const NEWLINE = 0x0a;
const decoder = new TextDecoder('utf-8', {fatal: true});

/**
 * A file's bytes as text: gunzipped when it starts with gzip's magic bytes (whatever its name), as
 * it is otherwise. A damaged or cut gzip file rejects the read with an `IoError` (key `input`).
 */
export function openDecompressed(file: string, highWaterMark = 256 * 1024): {stream: Readable; gzip: boolean; raw: Readable} {
  const raw = createReadStream(file, {highWaterMark});
  if (compressionOf(file) !== 'gzip') return {stream: raw, gzip: false, raw};
  const gunzip = createGunzip({chunkSize: 64 * 1024});
  raw.on('error', (error) => gunzip.destroy(error));
  gunzip.on('close', () => raw.destroy());
  return {stream: raw.pipe(gunzip), gzip: true, raw};
}

/** Reads JSONL from a file path (gzip read transparently) or a stream ('-' = stdin), skipping blank lines. */
export async function* readJsonl(source: string | Readable, options: JsonlOptions = {}): AsyncGenerator<InputRecord> {
  const maxLineBytes = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
  const opened = typeof source === 'string' && source !== '-' ? openDecompressed(source) : undefined;
  const stream = opened?.stream ?? (source === '-' ? process.stdin : (source as Readable));
  // A span points into the file's bytes: a compressed file's lines are not at an offset of it.
  const file = opened && !opened.gzip ? (source as string) : undefined;
  // The digest is of the file's own bytes (compressed ones for a gzip file): `--resume` hashes the file's first bytes.
  if (opened?.gzip && options.digest) opened.raw.on('data', (chunk: Buffer) => options.digest!.update(chunk));
  const unreadable = opened?.gzip
    ? '; it is not in the failures file (a compressed input is not read twice)'
    : '; it is not in the failures file (standard input cannot be read twice)';
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let tooLong = false;
  let line = 0;
  /** Byte offset in the input of the chunk being split, and of the line being read. */
  let chunkOffset = 0;
  let lineStart = 0;

  const finishLine = (last: Buffer, lineEnd: number): InputRecord | undefined => {
    line++;
    if (tooLong) {
      tooLong = false;
      pending = [];
      pendingBytes = 0;
      const where = file ? {span: {file, offset: lineStart, length: lineEnd - lineStart}} : {};
      const note = file ? '' : unreadable;
      return {
        line,
        text: '',
        error: `line is longer than ${maxLineBytes} bytes (raise maxLineBytes in the job, or --max-line-bytes, if that is expected)${note}`,
        ...where,
      };
    }
    let bytes = pending.length === 0 ? last : Buffer.concat([...pending, last]);
    pending = [];
    pendingBytes = 0;
    const cr = bytes.length > 0 && bytes[bytes.length - 1] === 0x0d;
    if (cr) bytes = bytes.subarray(0, bytes.length - 1); // CRLF
    if (bytes.length > maxLineBytes) {
      // Already in memory (it fit in the chunks read): keep it, or point at it in its file.
      const where = file ? {span: {file, offset: lineStart, length: lineEnd - lineStart}} : {raw: Buffer.from(bytes)};
      return {
        line,
        text: '',
        error: `line is longer than ${maxLineBytes} bytes (raise maxLineBytes in the job, or --max-line-bytes, if that is expected)`,
        ...where,
      };
    }
    let text: string;
    try {
      text = decoder.decode(bytes);
    } catch {
      return {line, text: bytes.toString('latin1'), error: 'not valid UTF-8 text', raw: Buffer.from(bytes), ...(cr ? {trimmed: {cr}} : {})};
    }
    // TextDecoder drops a BOM (ignoreBOM: false); the failures file puts it back.
    const bom = line === 1 && bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf;
    if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    if (text.trim() === '') return undefined;
    return bom || cr ? {line, text, trimmed: {...(bom ? {bom} : {}), ...(cr ? {cr} : {})}} : {line, text};
  };

  const chunks = opened?.gzip
    ? gunzipped(stream as AsyncIterable<Buffer>, source as string, () => line)
    : (stream as AsyncIterable<Buffer | string>);
  for await (const chunk of chunks) {
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    if (!opened?.gzip) options.digest?.update(buffer);
    let start = 0;
    let newline = buffer.indexOf(NEWLINE, start);
    while (newline !== -1) {
      const record = finishLine(buffer.subarray(start, newline), chunkOffset + newline);
      lineStart = chunkOffset + newline + 1;
      if (record) yield record;
      start = newline + 1;
      newline = buffer.indexOf(NEWLINE, start);
    }
    if (start < buffer.length) {
      const rest = buffer.subarray(start);
      // +1: the line may end in a CR (CRLF) that is not counted; finishLine checks the exact length.
      if (tooLong || pendingBytes + rest.length > maxLineBytes + 1) {
        tooLong = true; // drop the bytes of an over-long line instead of buffering them
      } else {
        // Copy: the stream may reuse its chunk.
        pending.push(Buffer.from(rest));
        pendingBytes += rest.length;
      }
    }
    chunkOffset += buffer.length;
  }
  if (pendingBytes > 0 || tooLong) {
    const record = finishLine(Buffer.alloc(0), chunkOffset);
    if (record) yield record;
  }
}

/** The chunks of a gunzip stream; a damaged or cut file is an `IoError` naming the line it stopped after. */
async function* gunzipped(stream: AsyncIterable<Buffer>, file: string, line: () => number): AsyncGenerator<Buffer> {
  try {
    yield* stream;
  } catch (error) {
    const why = (error as NodeJS.ErrnoException).code?.startsWith('Z_')
      ? `the gzip data is cut short or damaged after line ${line()} (${(error as Error).message}); the records before it were read`
      : (error as Error).message;
    throw new IoError(file, new Error(why, {cause: error}), {key: 'input', what: 'read'});
  }
}

/** What reading a job's input needs of the job. */
export interface InputSpec {
  /** The job file (for messages). */
  readonly file: string;
  /** The JSONL input path, `-` for stdin; undefined for a module's `requests()`. */
  readonly input: string | undefined;
  readonly maxLineBytes: number;
  readonly requests: (() => AsyncIterable<unknown> | Iterable<unknown>) | undefined;
}

/**
 * A job's records: its module's `requests()`, its JSONL file, or standard input for '-'. A failures
 * file's records carry their line in the original input (`origin`), from its `.lines` file; when
 * that no longer matches, `onWarning` says so and the records carry none.
 */
export function openInput(
  spec: InputSpec,
  options: JsonlOptions & {
    readonly stdin?: Readable | undefined;
    readonly onWarning?: (message: string) => void;
    readonly onlyStatus?: ReadonlySet<string> | undefined;
  } = {},
): AsyncGenerator<InputRecord> {
  if (spec.requests) return readRequests(spec.requests);
  const jsonl: JsonlOptions = {maxLineBytes: options.maxLineBytes ?? spec.maxLineBytes};
  if (readsStdin(spec.input)) return readJsonl(options.stdin ?? process.stdin, jsonl);
  const origins = readOrigins(spec.input!);
  if (origins && 'problem' in origins) options.onWarning?.(origins.problem);
  const records = readJsonl(spec.input!, {...jsonl, digest: options.digest});
  if (options.onlyStatus) {
    // Checked before the run (statusFilterProblem): a failures file whose `.lines` file has statuses.
    if (!origins || 'problem' in origins)
      throw new UsageError(statusFilterProblem(spec.input!) ?? `--only-status: ${spec.input} has no statuses`);
    return withOrigins(records, origins.origins, origins.statuses, options.onlyStatus);
  }
  return origins && 'origins' in origins ? withOrigins(records, origins.origins) : records;
}

/** The records of a failures file with their original lines; with `only`, those that failed with one of those statuses. */
async function* withOrigins(
  records: AsyncGenerator<InputRecord>,
  origins: Int32Array,
  statuses?: readonly (string | undefined)[],
  only?: ReadonlySet<string>,
): AsyncGenerator<InputRecord> {
  for await (const record of records) {
    if (record.line > origins.length) {
      yield record;
      continue;
    }
    if (only && !only.has(statuses![record.line - 1] ?? '')) continue;
    yield {...record, origin: origins[record.line - 1]!};
  }
}

/**
 * For `--only-status`: why `input` cannot be filtered by status (it is no failures file with its
 * `.lines` file, or an older one without statuses), or undefined when it can.
 */
export function statusFilterProblem(input: string | undefined): string | undefined {
  if (!input || readsStdin(input))
    return '--only-status picks records of a failures file by the status they failed with; standard input has none: give the failures file as --input';
  const origins = readOrigins(input);
  if (!origins)
    return `--only-status picks records of a failures file by the status they failed with, read from its ${ORIGIN_SUFFIX} file; ${input}${ORIGIN_SUFFIX} is not there (is ${input} a failures file?)`;
  if ('problem' in origins) return `--only-status cannot pick records of ${input}: ${origins.problem.replace(/; results carry.*$/, '')}`;
  if (origins.statuses.some((status) => status === undefined))
    return `--only-status: ${input}${ORIGIN_SUFFIX} has no statuses (it was written by an older grpc-batch); re-send the whole file, or filter it by its results file`;
  return undefined;
}

/** How many records of a failures file failed with each status (for `--only-status`'s log line and progress total). */
export function statusCounts(input: string): Map<string, number> {
  const counts = new Map<string, number>();
  const origins = readOrigins(input);
  if (origins && 'statuses' in origins)
    for (const status of origins.statuses) if (status) counts.set(status, (counts.get(status) ?? 0) + 1);
  return counts;
}

/**
 * Whether an input names standard input: '-', or /dev/stdin and its aliases, which are read from
 * the open descriptor (opening them again fails when standard input is a socket, as supervisors
 * and Node's own child processes give it).
 */
export function readsStdin(input: string | undefined): boolean {
  return input === '-' || input === '/dev/stdin' || input === '/dev/fd/0' || input === '/proc/self/fd/0';
}

/** The input as named in messages: relative to the working folder, `<stdin>`, or the module's `requests()`. */
export function inputLabel(spec: InputSpec): string {
  if (spec.input === '-') return '<stdin>';
  if (spec.input === undefined) return `${spec.file} requests()`;
  return path.relative(process.cwd(), spec.input) || spec.input;
}

/** Wraps a job module's `requests()` as input records. */
export async function* readRequests(requests: () => AsyncIterable<unknown> | Iterable<unknown>): AsyncGenerator<InputRecord> {
  let line = 0;
  for await (const value of requests()) {
    line++;
    let text: string;
    try {
      text = JSON.stringify(value) ?? 'undefined';
    } catch (error) {
      yield {line, text: String(value), error: `request ${line} is not JSON-serialisable: ${(error as Error).message}`};
      continue;
    }
    yield {line, text, value};
  }
}

/** Counts non-blank lines of a file (decompressed when gzip), for progress totals; cheap next to the run itself. */
export async function countLines(file: string): Promise<number> {
  let count = 0;
  let lineHasText = false;
  for await (const chunk of openDecompressed(file, 1024 * 1024).stream as AsyncIterable<Buffer>) {
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i]!;
      if (byte === NEWLINE) {
        if (lineHasText) count++;
        lineHasText = false;
      } else if (byte !== 0x20 && byte !== 0x0d && byte !== 0x09) lineHasText = true;
    }
  }
  return lineHasText ? count + 1 : count;
}

/**
 * Counts a job's records for progress, only when its input is a regular file (read a second time,
 * which takes nothing from the run). Undefined for a pipe, a FIFO, a device, standard input or
 * a module: those can be read only once.
 */
export function countRegularFileLines(spec: InputSpec): Promise<number> | undefined {
  if (!spec.input || readsStdin(spec.input) || spec.requests) return undefined;
  const stat = statSync(spec.input, {throwIfNoEntry: false});
  return stat?.isFile() ? countLines(spec.input) : undefined;
}
