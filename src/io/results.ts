import {closeSync, existsSync, fstatSync, ftruncateSync, mkdirSync, openSync, readSync, statSync, writeSync} from 'node:fs';
import path from 'node:path';
import {IoError} from '../errors.js';
import type {RecordKey} from './record-key.js';
import {fsyncAsync, fsyncDir} from '../util/durable.js';
import {gzipMember, isGzipPath, repairGzipTail} from './compression.js';
import type {CallOutcome} from '../rpc/call.js';
import type {MetadataJson} from '../rpc/metadata.js';

/** What a results line may add about the call: the decoded google.rpc.Status, response headers and trailers. */
export interface CallExtras {
  /** google.rpc.Status from `grpc-status-details-bin`, in proto3 JSON (failed calls). */
  readonly statusDetails?: unknown;
  /** Response headers (`recordMetadata: true`). */
  readonly headers?: MetadataJson;
  /** Response trailers (`recordMetadata: true`). */
  readonly trailers?: MetadataJson;
}

/** The extras of an outcome, only those it has. */
export function outcomeExtras(outcome: CallOutcome): CallExtras {
  return {
    ...(!outcome.ok && outcome.statusDetails !== undefined ? {statusDetails: outcome.statusDetails} : {}),
    ...(outcome.recorded ? {headers: outcome.recorded.headers, trailers: outcome.recorded.trailers} : {}),
  };
}

/** The final result of one input record, as written to the results file (one JSON line). */
export type RecordResult = RecordOutcome & {
  /** The record's key: its line in the original input (through re-runs of failures files) and the `resultFields`. */
  readonly key: RecordKey;
};

/** How a record ended, before its key is added. */
export type RecordOutcome =
  | (CallExtras & {
      readonly line: number;
      readonly status: 'OK';
      readonly attempts: number;
      /** ms from the first attempt's start to the answer, backoffs included. */
      readonly latencyMs: number;
      readonly response: unknown;
    })
  | (CallExtras & {
      readonly line: number;
      /** Status name of the last attempt (`UNAVAILABLE`). */
      readonly status: string;
      readonly code: number;
      readonly error: string;
      readonly attempts: number;
      readonly latencyMs: number;
    })
  | {
      readonly line: number;
      /** The record was not sent: it is not valid for the request type. */
      readonly status: 'INVALID';
      readonly error: string;
      readonly attempts: 0;
    };

/**
 * A record's result with its key, `line` first then `key` (the order a reader of the results file
 * sees). A JSON line made elsewhere (a worker thread's, `{"line":N,...}`) gets the key spliced in
 * after its line, without parsing the response again.
 */
export function withKey(outcome: RecordOutcome | string, key: RecordKey): RecordResult | string {
  if (typeof outcome === 'string') return outcome.replace(/^\{"line":\d+,/, (head) => `${head}"key":${JSON.stringify(key)},`);
  const {line, ...rest} = outcome;
  return {line, key, ...rest} as RecordResult;
}

/** Expands `{name}` and `{runId}` in an output path template. */
export function expandTemplate(template: string, values: {name: string; runId: string}): string {
  return template.replace(/\{(name|runId)\}/g, (_, key: 'name' | 'runId') => values[key]);
}

/** The results and failures files of one run of a job. */
export function runFiles(
  spec: {readonly name: string; readonly output: string; readonly failures: string},
  runId: string,
): {output: string; failures: string} {
  const values = {name: spec.name, runId};
  return {output: expandTemplate(spec.output, values), failures: expandTemplate(spec.failures, values)};
}

/**
 * An append-only JSONL file. `write` only buffers; the owner calls `flush()` (one synchronous write
 * of everything buffered), so it decides when lines reach the disk and in which order two files are
 * written. Created on first write. A path ending in `.gz` is written gzip-compressed, one gzip
 * member per flush, so what was flushed is readable after a crash and a resume appends members.
 */
export class LineWriter {
  readonly path: string;
  #fd: number | undefined;
  #buffer: (string | Buffer)[] = [];
  #hasBytes = false;
  #bufferBytes = 0;
  #closed = false;
  /** Bytes of whole lines on disk: after a failed write the file is cut back to this. */
  #size = 0;
  /** Set by a failed write: the file takes no more lines (they would follow a hole). */
  #broken: IoError | undefined;
  #dirSynced = false;
  readonly #append: boolean;
  readonly #key: string;
  /** A path ending in `.gz`: every flush is written as one gzip member (see compression.ts). */
  readonly #gzip: boolean;

  /**
   * With `append: true` the file is appended to (after repair), not truncated. `key` is the job key
   * the file comes from, named in I/O errors. @default 'output'
   */
  constructor(file: string, options: {append?: boolean | undefined; key?: string} = {}) {
    this.path = file;
    this.#append = options.append ?? false;
    this.#key = options.key ?? 'output';
    this.#gzip = isGzipPath(file);
  }

  /** The error of a failed file operation, naming the key and the path: `failures: cannot write /x: ENOSPC ...`. */
  #ioError(what: string, error: unknown): IoError {
    return error instanceof IoError ? error : new IoError(this.path, error, {key: this.#key, what});
  }

  /** Whether the file was opened (it exists). */
  get isOpen(): boolean {
    return this.#fd !== undefined;
  }

  /** Bytes written but not flushed yet. */
  get bufferedBytes(): number {
    return this.#bufferBytes;
  }

  /**
   * Opens the file (and makes its folder). In append mode what is there is kept, after cutting off
   * a half-written last line left by a crash; otherwise the file is truncated.
   */
  open(): void {
    if (this.#fd !== undefined) return;
    if (this.#broken) throw this.#broken;
    try {
      mkdirSync(path.dirname(this.path), {recursive: true});
      if (this.#append) (this.#gzip ? repairGzipTail : repairTail)(this.path);
      this.#fd = openSync(this.path, this.#append ? 'a' : 'w');
      this.#size = fstatSync(this.#fd).size;
    } catch (error) {
      throw (this.#broken = this.#ioError('create', error));
    }
  }

  /** Adds a line (a Buffer is written as it is: bytes that are not UTF-8 stay as they were). */
  write(line: string | Buffer): void {
    if (this.#closed) throw new Error(`${this.path} is closed`);
    this.open();
    this.#buffer.push(line);
    if (typeof line !== 'string') this.#hasBytes = true;
    this.#bufferBytes += line.length + 1;
  }

  /** Writes out what is buffered, now. */
  flush(): void {
    if (this.#buffer.length === 0 || this.#fd === undefined) return;
    const bytes = this.#hasBytes
      ? Buffer.concat(this.#buffer.flatMap((part) => [typeof part === 'string' ? Buffer.from(part) : part, NEWLINE]))
      : Buffer.from(this.#buffer.join('\n') + '\n');
    this.#buffer = [];
    this.#bufferBytes = 0;
    this.#hasBytes = false;
    this.#writeOrCutBack(this.#gzip ? gzipMember(bytes) : bytes);
  }

  /**
   * Makes what was flushed durable (fsync, off the event loop; the folder too, the first time, so
   * a new file's name survives a power cut). Rejects with an `IoError`.
   */
  async sync(): Promise<void> {
    if (this.#fd === undefined) return;
    if (this.#broken) throw this.#broken;
    try {
      await fsyncAsync(this.#fd);
      if (!this.#dirSynced) {
        await fsyncDir(path.dirname(this.path));
        this.#dirSynced = true;
      }
    } catch (error) {
      throw (this.#broken ??= this.#ioError('sync', error));
    }
  }

  /** The write error that stopped this file, if one did. */
  get error(): IoError | undefined {
    return this.#broken;
  }

  /** Writes whole lines, or on failure cuts the file back to its last whole line and throws `IoError`. */
  #writeOrCutBack(bytes: Buffer): void {
    if (this.#broken) throw this.#broken;
    try {
      writeAll(this.#fd!, bytes);
      this.#size += bytes.length;
    } catch (error) {
      this.#broken = this.#ioError('write', error);
      try {
        ftruncateSync(this.#fd!, this.#size); // a half-written line would glue to the next one
      } catch {
        // --resume cuts a half line at the end off anyway
      }
      throw this.#broken;
    }
  }

  /** Adds a line copied from a byte range of another file, without holding it in memory. */
  copyLine(file: string, offset: number, length: number): void {
    this.open();
    this.flush();
    try {
      this.#copy(file, offset, length);
    } catch (error) {
      throw this.#ioError('write', error);
    }
  }

  #copy(file: string, offset: number, length: number): void {
    const source = openSync(file, 'r');
    const start = this.#size;
    try {
      const chunk = Buffer.alloc(Math.min(length, 1024 * 1024));
      let done = 0;
      while (done < length) {
        const read = readSync(source, chunk, 0, Math.min(chunk.length, length - done), offset + done);
        if (read === 0) break;
        this.#writeOrCutBack(this.#gzip ? gzipMember(chunk.subarray(0, read)) : chunk.subarray(0, read));
        done += read;
      }
      this.#writeOrCutBack(this.#gzip ? gzipMember(NEWLINE) : NEWLINE);
    } catch (error) {
      if (this.#broken) {
        this.#size = start;
        try {
          ftruncateSync(this.#fd!, start);
        } catch {
          // as above
        }
      }
      throw error;
    } finally {
      closeSync(source);
    }
  }

  /** Flushes, fsyncs and closes. Idempotent. Rejects with an `IoError` (the file is closed all the same). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#fd === undefined) return;
    try {
      this.flush();
      await this.sync();
    } finally {
      closeSync(this.#fd);
    }
  }
}

const NEWLINE = Buffer.from('\n');

function writeAll(fd: number, bytes: Buffer): void {
  let offset = 0;
  while (offset < bytes.length) offset += writeSync(fd, bytes, offset, bytes.length - offset);
}

/** Cuts a file back to its last newline: a line half-written by a crash is dropped, whole ones stay. */
export function repairTail(file: string): number {
  if (!existsSync(file)) return 0;
  const size = statSync(file).size;
  if (size === 0) return 0;
  const fd = openSync(file, 'r+');
  try {
    const chunk = Buffer.alloc(64 * 1024);
    let end = size;
    while (end > 0) {
      const start = Math.max(0, end - chunk.length);
      const read = readSync(fd, chunk, 0, end - start, start);
      const newline = chunk.subarray(0, read).lastIndexOf(0x0a);
      if (newline !== -1) {
        const keep = start + newline + 1;
        if (keep < size) ftruncateSync(fd, keep);
        return size - keep;
      }
      end = start;
    }
    ftruncateSync(fd, 0);
    return size;
  } finally {
    closeSync(fd);
  }
}
