import {spawn, type ChildProcessWithoutNullStreams} from 'node:child_process';
import path from 'node:path';
import {PACKAGE_ROOT} from '../../src/paths.js';

/** The CLI entry, run from source through tsx so the tests need no build. */
export const CLI_ENTRY = path.join(PACKAGE_ROOT, 'bin', 'grpc-batch.ts');
/** `tsx/esm`, resolved here: `--import` resolves from the child's cwd, which may be a temp folder. */
const TSX_ESM = import.meta.resolve('tsx/esm');

export interface CliOptions {
  /** Working folder. @default the package root */
  readonly cwd?: string;
  /** Added to (and overriding) the parent's environment; `undefined` removes a variable. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Written to standard input, which is then closed. @default '' (stdin closed at once) */
  readonly stdin?: string | Buffer;
  /** Killed (SIGKILL) after this long; the result then has `timedOut: true`. @default 20_000 */
  readonly timeoutMs?: number;
}

export interface CliResult {
  /** Exit code; null when killed by a signal. */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
}

/**
 * Runs `node --import=tsx/esm bin/grpc-batch.ts ...args` as a user would, in its own process, and
 * resolves when it exits (never rejects on a non-zero exit: the code is data).
 */
export function runCli(args: readonly string[], options: CliOptions = {}): Promise<CliResult> {
  const child = spawnChild(args, options);
  let stdout = '';
  let stderr = '';
  let timedOut = false;
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  child.stdin.on('error', () => undefined); // the CLI may exit before reading stdin
  child.stdin.end(options.stdin ?? '');
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, options.timeoutMs ?? 20_000);
  return new Promise((resolve, reject) => {
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({code, signal, stdout, stderr, timedOut});
    });
  });
}

/** `node --import=tsx/esm bin/grpc-batch.ts ...args`, with the test runner's wiring removed from the environment. */
function spawnChild(args: readonly string[], options: {cwd?: string; env?: Readonly<Record<string, string | undefined>>}): ChildProcessWithoutNullStreams {
  const env: Record<string, string | undefined> = {
    ...process.env,
    // The child must not inherit the parent's test-runner wiring.
    NODE_TEST_CONTEXT: undefined,
    NODE_OPTIONS: undefined,
    GRPC_BATCH_LOG: 'warn',
    ...options.env,
  };
  for (const key of Object.keys(env)) if (env[key] === undefined) delete env[key];
  return spawn(process.execPath, [`--import=${TSX_ESM}`, CLI_ENTRY, ...args], {
    cwd: options.cwd ?? PACKAGE_ROOT,
    env: env as NodeJS.ProcessEnv,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

/** A CLI process started by `spawnCli`, to be signalled mid-run. */
export interface CliProcess {
  readonly child: ChildProcessWithoutNullStreams;
  /** Resolves when the process exits, with what it printed. */
  readonly done: Promise<CliResult>;
}

/** Starts the CLI and returns at once, so a test can signal it mid-run. Killed after `timeoutMs`. */
export function spawnCli(args: readonly string[], options: Omit<CliOptions, 'stdin'> = {}): CliProcess {
  const child = spawnChild(args, options);
  child.stdin.end();
  let stdout = '';
  let stderr = '';
  let timedOut = false;
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, options.timeoutMs ?? 60_000);
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({code, signal, stdout, stderr, timedOut});
    });
  });
  return {child, done};
}

/** Polls `condition` every 10 ms until it holds, or throws after `timeoutMs`. */
export async function waitFor(condition: () => boolean, timeoutMs = 30_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
