// log-update and the ~20 modules it loads cost a tenth of a second at start-up: they are loaded only
// when stderr is a terminal, the one place a bar is drawn.
const {createLogUpdate} = process.stderr.isTTY ? await import('log-update') : {createLogUpdate: undefined};

/**
 * stderr as one writer, shared by the log lines and the progress bar. While the bar is shown, a
 * log line is written above it and the bar is drawn again below it (log-update draws the bar), so
 * the two never mix on one line; `clear()` removes the bar before the summary is printed. Off a
 * terminal (the bar is drawn only when stderr is one) there is no bar and lines are written as they come.
 */
export class Terminal {
  readonly stream: NodeJS.WriteStream;
  readonly #update: ReturnType<typeof import('log-update').createLogUpdate> | undefined;
  /** The status line on screen, drawn again after each log line. */
  #status: string | undefined;

  constructor(stream: NodeJS.WriteStream = process.stderr) {
    this.stream = stream;
    // A pseudo-terminal that was never sized reports 0 columns: draw for 80 x 24 then.
    const sized = {
      isTTY: true,
      get columns() {
        return stream.columns || 80;
      },
      get rows() {
        return stream.rows || 24;
      },
      write: (text: string) => stream.write(text),
    };
    this.#update = stream.isTTY && createLogUpdate ? createLogUpdate(sized as unknown as NodeJS.WriteStream) : undefined;
  }

  get isTTY(): boolean {
    return this.#update !== undefined;
  }

  /** Columns of the terminal. @default 80 off a terminal */
  get columns(): number {
    return this.stream.columns || 80;
  }

  /** Writes text (one or more whole lines, ending in a newline) above the status line. */
  write(text: string): void {
    if (this.#update && this.#status !== undefined) {
      // Erase the bar, write the line as it is (the terminal wraps it, so it copies as one line), draw the bar again.
      this.#update.clear();
      this.stream.write(text);
      this.#update(this.#status);
    } else {
      this.stream.write(text);
    }
  }

  /** Shows (or replaces) the status line at the bottom. A no-op off a terminal. */
  status(line: string): void {
    if (!this.#update) return;
    this.#status = line;
    this.#update(line);
  }

  /** Removes the status line and shows the cursor again. Idempotent. */
  clear(): void {
    if (!this.#update || this.#status === undefined) return;
    this.#status = undefined;
    this.#update.clear();
    this.#update.done();
  }
}

/** The process's stderr terminal: the loggers and the progress bar of a command share it. */
let shared: Terminal | undefined;
export function stderrTerminal(): Terminal {
  return (shared ??= new Terminal(process.stderr));
}
