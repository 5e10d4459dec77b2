import {createWriteStream, mkdirSync, type WriteStream} from 'node:fs';
import {once} from 'node:events';
import path from 'node:path';

/** The final result of one input record, as written to the results file (one JSON line). */
export type RecordResult =
  | {
      readonly line: number;
      readonly status: 'OK';
      readonly attempts: number;
      /** ms from the first attempt's start to the answer, backoffs included. */
      readonly latencyMs: number;
      readonly response: unknown;
    }
  | {
      readonly line: number;
      /** Status name of the last attempt (`UNAVAILABLE`). */
      readonly status: string;
      readonly code: number;
      readonly error: string;
      readonly attempts: number;
      readonly latencyMs: number;
    }
  | {
      readonly line: number;
      /** The record was not sent: it is not valid for the request type. */
      readonly status: 'INVALID';
      readonly error: string;
      readonly attempts: 0;
    };

/** Expands `{name}` and `{runId}` in an output path template. */
export function expandTemplate(template: string, values: {name: string; runId: string}): string {
  return template.replace(/\{(name|runId)\}/g, (_, key: 'name' | 'runId') => values[key]);
}

/**
 * An append-only JSONL file with backpressure: `write` buffers, `ready()` resolves once the OS has
 * caught up, so a fast run cannot fill memory with unwritten lines. Created on first write.
 */
export class LineWriter {
  readonly path: string;
  #stream: WriteStream | undefined;
  #error: Error | undefined;
  #lines = 0;

  constructor(file: string) {
    this.path = file;
  }

  get lines(): number {
    return this.#lines;
  }

  /** Whether anything was written (the file exists). */
  get isOpen(): boolean {
    return this.#stream !== undefined;
  }

  /** Creates the file (and its folder) now, even if nothing is written. */
  open(): void {
    if (this.#stream) return;
    mkdirSync(path.dirname(this.path), {recursive: true});
    this.#stream = createWriteStream(this.path, {flags: 'w', highWaterMark: 256 * 1024});
    this.#stream.on('error', (error) => {
      this.#error ??= error;
    });
  }

  write(line: string): void {
    if (this.#error) throw this.#error;
    this.open();
    this.#lines++;
    this.#stream!.write(line + '\n');
  }

  /** Resolves when the buffer has drained (at once when it is not full). */
  async ready(): Promise<void> {
    if (this.#error) throw this.#error;
    const stream = this.#stream;
    if (stream?.writableNeedDrain) await Promise.race([once(stream, 'drain'), once(stream, 'error')]);
    if (this.#error) throw this.#error;
  }

  /** Flushes and closes; rejects on a write error. Idempotent. */
  async close(): Promise<void> {
    const stream = this.#stream;
    if (!stream || stream.closed || stream.writableFinished) {
      if (this.#error) throw this.#error;
      return;
    }
    await new Promise<void>((resolve, reject) => {
      stream.end((error?: Error | null) => (error ? reject(error) : resolve()));
    });
    if (this.#error) throw this.#error;
  }
}
