import {spawn} from 'node:child_process';
import xterm from '@xterm/headless';

const {Terminal} = xterm;
import {CLI_COMMAND} from './cli.js';

/**
 * The CLI on a real pseudo-terminal, read back as a screen. `script` (util-linux, on every Debian
 * machine) gives the CLI a pty of the size asked for (set with `stty` inside it), so stderr and
 * stdout are a TTY as in a shell; what it writes goes through a terminal emulator (xterm.js,
 * headless), and the test reads the rows the user would see: the same text as `tmux capture-pane`.
 */

export interface ScreenOptions {
  readonly cwd: string;
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** @default 100 */
  readonly cols?: number;
  /** @default 30 */
  readonly rows?: number;
  /** Killed after this long. @default 60_000 */
  readonly timeoutMs?: number;
}

export interface ScreenResult {
  /** Exit code of the CLI. */
  readonly code: number | null;
  /** The visible rows, top to bottom, each trimmed at the end (like `tmux capture-pane -p`). */
  readonly screen: readonly string[];
  /** Every line written, scrolled-off ones included, a line the terminal wrapped over rows joined back into one. */
  readonly history: readonly string[];
  /** The bytes as written, escape codes included. */
  readonly raw: string;
}

function shellQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** Runs `grpc-batch ...args` on a `cols` x `rows` pseudo-terminal and returns its screen once it exits. */
export async function runOnScreen(args: readonly string[], options: ScreenOptions): Promise<ScreenResult> {
  const cols = options.cols ?? 100;
  const rows = options.rows ?? 30;
  const cli = [...CLI_COMMAND, ...args].map(shellQuote).join(' ');
  // The exit code is printed by the shell inside the pty: `script` itself may not pass it on.
  const command = `stty cols ${cols} rows ${rows}; ${cli}; printf '\\n[exit %s]\\n' $?`;
  const env: Record<string, string | undefined> = {
    ...process.env,
    NODE_TEST_CONTEXT: undefined,
    NODE_OPTIONS: undefined,
    TERM: 'xterm-256color',
    ...options.env,
  };
  for (const key of Object.keys(env)) if (env[key] === undefined) delete env[key];
  // Not spawnSync: a test's server runs in this process and must go on answering.
  const child = spawn('script', ['-qec', command, '/dev/null'], {
    cwd: options.cwd,
    env: env as NodeJS.ProcessEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const terminal = new Terminal({cols, rows, scrollback: 10_000, allowProposedApi: true});
  let raw = '';
  let written = Promise.resolve();
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    raw += chunk;
    written = written.then(() => new Promise<void>((resolve) => terminal.write(chunk, resolve)));
  });
  child.stderr.resume();
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
  await new Promise<void>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', () => resolve());
  });
  clearTimeout(timer);
  await written;
  const buffer = terminal.buffer.active;
  const rowsWritten: string[] = [];
  const logical: string[] = [];
  for (let i = 0; i < buffer.length; i++) {
    const line = buffer.getLine(i);
    const text = line?.translateToString(true) ?? '';
    rowsWritten.push(text);
    if (line?.isWrapped && logical.length > 0) logical[logical.length - 1] += text;
    else logical.push(text);
  }
  terminal.dispose();
  const exit = /\[exit (\d+)\]/.exec(raw);
  return {code: exit ? Number(exit[1]) : null, screen: dropExitLine(rowsWritten).slice(-rows), history: dropExitLine(logical), raw};
}

/** Drops the exit line (and the blank line before it) that the wrapper shell printed, and the empty rows after. */
function dropExitLine(lines: readonly string[]): string[] {
  const end = lines.findLastIndex((line) => /^\[exit \d+\]$/.test(line));
  const shown = end >= 0 ? lines.slice(0, end) : [...lines];
  while (shown.length > 0 && shown.at(-1) === '') shown.pop();
  return shown;
}
