import {existsSync} from 'node:fs';
import type {InputRecord} from './input.js';
import {ORIGIN_SUFFIX} from './origins.js';
import {LineWriter, type RecordResult} from './results.js';
import {Status, statusName} from '../codec/status.js';

/** A record's line as it was input: its text (or bytes), with the BOM and CR reading took off put back. */
function asInput(record: InputRecord): string | Buffer {
  const {trimmed} = record;
  if (!trimmed) return record.raw ?? record.text;
  if (record.raw) return trimmed.cr ? Buffer.concat([record.raw, Buffer.from('\r')]) : record.raw;
  return `${trimmed.bom ? '\ufeff' : ''}${record.text}${trimmed.cr ? '\r' : ''}`;
}

/** Buffered result bytes that make the files flush before the end of the event-loop turn. */
const FLUSH_BYTES = 256 * 1024;

/**
 * The one writer of a run's results and failures files: the record of truth. Every finished record
 * gets one result line; a failed or invalid one also gets its input line, exactly as input, in the
 * failures file. The two files are flushed together, failures first, so after a crash a record whose
 * result line is on disk has its failure line there too. Writes are buffered and flushed at the end
 * of the event-loop turn (or sooner past `FLUSH_BYTES`), and before a slot of the pool is reused
 * (`flushIfDirty`), so the records without a result line after a crash are at most those in flight.
 */
export class Sink {
  readonly #output: LineWriter;
  readonly #failures: LineWriter;
  /** Each failures line's line in the original input (`<failures>.lines`), so a re-run of the failures file keeps the keys. */
  readonly #origins: LineWriter;
  #flushScheduled = false;
  #results = 0;

  /** `append`: a resume: both files are kept and appended to (a half-written last line is cut off). */
  constructor(files: {readonly output: string; readonly failures: string}, options: {readonly append?: boolean} = {}) {
    this.#output = new LineWriter(files.output, {append: options.append, key: 'output'});
    this.#failures = new LineWriter(files.failures, {append: options.append, key: 'failures'});
    this.#origins = new LineWriter(`${files.failures}${ORIGIN_SUFFIX}`, {append: options.append, key: 'failures'});
  }

  get outputPath(): string {
    return this.#output.path;
  }

  get failuresPath(): string {
    return this.#failures.path;
  }

  /** Result lines written by this sink (on disk once flushed). */
  get results(): number {
    return this.#results;
  }

  /** Whether the failures file exists (some record failed, now or before a resume). */
  get hasFailures(): boolean {
    return this.#failures.isOpen;
  }

  /** Creates the results file (and repairs both files' tails on a resume). */
  open(append: boolean): void {
    this.#output.open();
    if (append && existsSync(this.#failures.path)) this.#failures.open();
    if (append && existsSync(this.#origins.path)) this.#origins.open();
  }

  /**
   * Writes a record's result, an object or its JSON line, and unless it is OK (`code` 0) its input
   * line to the failures file.
   */
  write(record: InputRecord, result: RecordResult | string, code: number): void {
    if (code !== Status.OK) {
      if (record.span) this.#failures.copyLine(record.span.file, record.span.offset, record.span.length);
      else this.#failures.write(asInput(record));
      // The key's line, and the status it failed with (INVALID: never sent), for `--only-status`.
      this.#origins.write(`${record.origin ?? record.line}\t${code < 0 ? 'INVALID' : statusName(code)}`);
    }
    this.#output.write(typeof result === 'string' ? result : JSON.stringify(result));
    this.#results++;
    if (this.#output.bufferedBytes >= FLUSH_BYTES) this.flush();
    else if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(this.#scheduledFlush);
    }
  }

  /** Flushes if anything is buffered: call before a freed slot takes a new record. A write error goes to `onError`. */
  flushIfDirty(): void {
    if (this.#output.bufferedBytes === 0) return;
    try {
      this.flush();
    } catch (error) {
      this.#onError?.(error);
    }
  }

  /**
   * fsyncs what was flushed, failures first (off the event loop): after it, a power cut keeps every
   * line written so far. Rejects with an `IoError`.
   */
  async sync(): Promise<void> {
    await this.#failures.sync();
    await this.#origins.sync();
    await this.#output.sync();
  }

  /** Writes out what is buffered, failures first. */
  flush(): void {
    this.#flushScheduled = false;
    this.#failures.flush();
    this.#origins.flush();
    this.#output.flush();
  }

  /** Flushes, fsyncs and closes the files, failures first; rejects with the first error. */
  async close(): Promise<void> {
    const closing = [
      await this.#failures.close().then(
        () => undefined,
        (error: unknown) => error,
      ),
    ];
    closing.push(
      await this.#origins.close().then(
        () => undefined,
        (error: unknown) => error,
      ),
    );
    closing.push(
      await this.#output.close().then(
        () => undefined,
        (error: unknown) => error,
      ),
    );
    for (const error of closing) if (error !== undefined) throw error;
  }

  readonly #scheduledFlush = (): void => {
    if (!this.#flushScheduled) return;
    try {
      this.flush();
    } catch (error) {
      this.#onError?.(error);
    }
  };

  #onError: ((error: unknown) => void) | undefined;

  /** Called when a flush at the end of a turn fails (ENOSPC, EIO): the run stops. */
  onError(listener: (error: unknown) => void): void {
    this.#onError = listener;
  }
}
