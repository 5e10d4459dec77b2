import {spawn, type ChildProcessWithoutNullStreams} from 'node:child_process';
import {readdirSync, statSync} from 'node:fs';
import path from 'node:path';
import {PACKAGE_ROOT} from '../../src/util/paths.js';

/** The CLI entry in source; run through tsx when the build is missing or older than the source. */
export const CLI_ENTRY = path.join(PACKAGE_ROOT, 'bin', 'grpc-batch.ts');
/** The built entry (`npm run build`, which `npm test` runs first): starts in about half the CPU time. */
const BUILT_ENTRY = path.join(PACKAGE_ROOT, 'dist', 'bin', 'grpc-batch.js');
/** `tsx/esm`, resolved here: `--import` resolves from the child's cwd, which may be a temp folder. */
const TSX_ESM = import.meta.resolve('tsx/esm');

/** Newest modification time of the `.ts` files under `dir`. */
function newestSource(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, {withFileTypes: true, recursive: true})) {
    if (entry.isFile() && entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(path.join(entry.parentPath, entry.name)).mtimeMs);
  }
  return newest;
}

/** True when dist/ was built after the last change to src/ and bin/. */
export function buildIsFresh(): boolean {
  try {
    const built = statSync(BUILT_ENTRY).mtimeMs;
    return built >= Math.max(newestSource(path.join(PACKAGE_ROOT, 'src')), newestSource(path.join(PACKAGE_ROOT, 'bin')));
  } catch {
    return false;
  }
}

/**
 * How the tests start the CLI: `node dist/bin/grpc-batch.js` when the build is fresh, else
 * `node --import=tsx/esm bin/grpc-batch.ts` (a test file run by hand after an edit still tests the source).
 * Set `GRPC_BATCH_TEST_SOURCE=1` to always run the source.
 */
export const CLI_COMMAND: readonly string[] =
  process.env['GRPC_BATCH_TEST_SOURCE'] !== '1' && buildIsFresh()
    ? [process.execPath, BUILT_ENTRY]
    : [process.execPath, `--import=${TSX_ESM}`, CLI_ENTRY];

export interface CliOptions {
  /** Working folder. @default the package root */
  readonly cwd?: string;
  /** Added to (and overriding) the parent's environment; `undefined` removes a variable. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Written to standard input, which is then closed. @default '' (stdin closed at once) */
  readonly stdin?: string | Buffer;
  /** Killed (SIGKILL) after this long; the result then has `timedOut: true`. @default 20_000 */
  readonly timeoutMs?: number;
  /** A command the CLI runs under, as `['ip', 'netns', 'exec', NAME]` (a network namespace of the test's). */
  readonly prefix?: readonly string[];
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
 * Runs `grpc-batch ...args` (see CLI_COMMAND) as a user would, in its own process, and
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

/** `grpc-batch ...args` (see CLI_COMMAND), with the test runner's wiring removed from the environment. */
function spawnChild(
  args: readonly string[],
  options: {cwd?: string; env?: Readonly<Record<string, string | undefined>>; prefix?: readonly string[]},
): ChildProcessWithoutNullStreams {
  const env: Record<string, string | undefined> = {
    ...process.env,
    // The child must not inherit the parent's test-runner wiring.
    NODE_TEST_CONTEXT: undefined,
    NODE_OPTIONS: undefined,
    GRPC_BATCH_LOG: 'warn',
    ...options.env,
  };
  for (const key of Object.keys(env)) if (env[key] === undefined) delete env[key];
  const command = [...(options.prefix ?? []), ...CLI_COMMAND, ...args];
  return spawn(command[0]!, command.slice(1), {
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

/**
 * Starts the CLI and returns at once, so a test can signal it mid-run. Killed after `timeoutMs`.
 * Its standard input is closed at once, unless `openStdin` (the test writes it, then ends it).
 */
export function spawnCli(args: readonly string[], options: Omit<CliOptions, 'stdin'> & {readonly openStdin?: boolean} = {}): CliProcess {
  const child = spawnChild(args, options);
  if (options.openStdin)
    child.stdin.on('error', () => undefined); // the CLI may exit before reading it all
  else child.stdin.end();
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
